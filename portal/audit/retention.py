"""How long a tenant keeps its audit trail (seed 003: at least 90 days), and the prune that
deletes what is older, in chain order, leaving a checkpoint so the rest still verifies."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import UUID

from sqlalchemy import text

from .. import audit
from ..extensions import db
from ..rules import RuleViolation

DEFAULT_DAYS, MIN_DAYS, MAX_DAYS = 365, 90, 3650

_SET = text("UPDATE tenants SET settings = jsonb_set(settings, '{audit}', "
            "coalesce(settings->'audit', '{}'::jsonb) || jsonb_build_object('retention_days', CAST(:days AS integer)))"
            " WHERE id = :tenant")
_PRUNE = text("SELECT audit_prune(CAST(:tenant AS uuid), :before)")


def retention_days(settings: dict | None) -> int:
    """The tenant's retention in days, from its settings (a value outside the limits: the default)."""
    value = ((settings or {}).get("audit") or {}).get("retention_days")
    return value if isinstance(value, int) and MIN_DAYS <= value <= MAX_DAYS else DEFAULT_DAYS


def set_retention(tenant, actor_id: UUID, days: int) -> None:
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise RuleViolation(f"Keep audit entries between {MIN_DAYS} and {MAX_DAYS} days.", field="days")
    before = retention_days(tenant.settings)
    if days == before:
        return
    db.session.execute(_SET, {"days": days, "tenant": tenant.id})
    audit.record(tenant.id, actor_id, "audit.retention", "tenant", tenant.id,
                 before={"retention_days": before}, after={"retention_days": days})


def prune(tenant_id: UUID, settings: dict | None, now: datetime | None = None) -> int:
    """Delete the tenant's rows older than its retention; the prune is itself audited. The
    caller has entered the tenant (RLS) and commits."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=retention_days(settings))
    deleted = db.session.execute(_PRUNE, {"tenant": str(tenant_id), "before": cutoff}).scalar() or 0
    if deleted:
        audit.record(tenant_id, None, "audit.prune", "audit", None, rows=deleted, before=cutoff.isoformat())
    return deleted
