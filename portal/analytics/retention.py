"""Partitions made ahead and events kept per plan.

- `ensure_partitions()`: this month and the next MONTHS_AHEAD exist (idempotent; the
  `analytics.partitions` job runs it daily, the migration made the first ones).
- `prune()`: whole months that ended before every plan's retention are dropped
  (`portal_analytics_drop_partitions`, the longest retention decides); inside younger
  months, each tenant's rows older than its plan's `analytics_retention_days` are deleted
  under its own RLS context, one transaction per tenant, and the deletion is audited.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from uuid import UUID

from sqlalchemy import select, text

from .. import audit
from ..database.context import tenant_scope
from ..extensions import db
from ..tenants.models import Plan, Tenant

MONTHS_AHEAD = 2
_ENSURE = text("SELECT portal_analytics_partitions(CAST(:first AS date), :months)")
_DROP = text("SELECT portal_analytics_drop_partitions()")
_DELETE = text("DELETE FROM analytics_events WHERE tenant_id = :t AND occurred_at < :cutoff")
_DELETE_DAYS = text("DELETE FROM analytics_daily WHERE tenant_id = :t AND day < :day")
_PARTITIONS = text("""
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'analytics_events'::regclass ORDER BY c.relname
""")


def ensure_partitions(today: date | None = None, months_ahead: int = MONTHS_AHEAD) -> int:
    """Create this month's partition and the next `months_ahead`; returns how many were new."""
    first = (today or datetime.now(timezone.utc).date()).replace(day=1)
    return db.session.execute(_ENSURE, {"first": first, "months": months_ahead + 1}).scalar() or 0


def partitions() -> list[str]:
    return list(db.session.scalars(_PARTITIONS))


def prune_tenant(tenant_id: UUID, days: int, now: datetime | None = None) -> int:
    """Delete one tenant's events past `days`; the caller has entered the tenant and commits."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    deleted = db.session.execute(_DELETE, {"t": tenant_id, "cutoff": cutoff}).rowcount or 0
    # Whole days only: the day the cutoff falls in keeps its (partly pruned) count.
    db.session.execute(_DELETE_DAYS, {"t": tenant_id, "day": cutoff.date()})
    if deleted:
        audit.record(tenant_id, None, "analytics.prune", "analytics", None, rows=deleted, before=cutoff.isoformat())
    return deleted


def prune(now: datetime | None = None) -> tuple[list[str], int]:
    """Drop expired months, then delete expired rows tenant by tenant; commits as it goes (a job
    or a command is its own edge). Returns the dropped partitions and the rows deleted."""
    dropped = list(db.session.execute(_DROP).scalar() or [])
    db.session.commit()
    rows = 0
    tenants = db.session.execute(select(Tenant.id, Plan.analytics_retention_days)
                                 .join(Plan, Plan.key == Tenant.plan).order_by(Tenant.id)).all()
    for tenant_id, days in tenants:
        with tenant_scope(db.session, tenant_id, actor="job:analytics.retention"):
            rows += prune_tenant(tenant_id, days, now)
        db.session.commit()
    return dropped, rows
