"""Integration rules: create (within the plan's max_integrations, under the tenant lock), change,
enable, disable, delete, replace credentials, sync now, send a test event, replay a delivery.
Services take the TenantContext, audit every change (never a credential) and never commit."""
from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import func, select

from .. import audit, keys
from ..extensions import db
from ..jobs.engine import defer_many
from ..rules import RuleViolation
from ..tenancy import TenantContext
from ..tenancy.limits import require_room
from ..tenancy.queries import lock_tenant
from ..tenants.plans import has_feature
from ..words import possessive
from . import providers
from .models import Integration, IntegrationStatus, LogEntry

NAME_MAX = 100
DESCRIPTION_MAX = 500
TABLE, COLUMN = "integrations", "credentials"
keys.register(TABLE, COLUMN)


def new_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def seal_credentials(integration: Integration, values: dict[str, str]) -> None:
    integration.credentials = keys.seal(json.dumps(values).encode(), tenant_id=integration.tenant_id, table=TABLE,
                                        row_id=integration.id, column=COLUMN) if values else None


def credentials_of(integration: Integration) -> dict[str, str]:
    """The stored credentials in clear, for the worker and the inbound check only. keys.Unreadable
    when they no longer open (a shredded tenant key, a ciphertext moved from another row)."""
    if not integration.credentials:
        return {}
    return json.loads(keys.unseal(integration.credentials, tenant_id=integration.tenant_id, table=TABLE,
                                  row_id=integration.id, column=COLUMN))


def snapshot(integration: Integration) -> dict:
    """How audit rows see an integration: never its credentials."""
    return {"name": integration.name, "provider": integration.provider, "config": integration.config or {},
            "enabled": bool(integration.enabled), "status": IntegrationStatus(integration.status).value,
            "has_credentials": integration.credentials is not None}


def _now() -> datetime:
    return datetime.now(UTC)


def available(ctx: TenantContext) -> list[providers.Provider]:
    """The providers this tenant's plan (or its own features) includes."""
    return [p for p in providers.PROVIDERS.values() if has_feature(ctx.tenant, p.feature)]


def _name(value: str | None) -> str:
    name = " ".join((value or "").split())
    if not name or len(name) > NAME_MAX:
        raise RuleViolation(f"Give the integration a name of at most {NAME_MAX} characters.", field="name")
    return name


def _description(value: str | None) -> str | None:
    text = " ".join((value or "").split())
    if len(text) > DESCRIPTION_MAX:
        raise RuleViolation(f"The description is at most {DESCRIPTION_MAX} characters.", field="description")
    return text or None


def create(ctx: TenantContext, provider_key: str, name: str, config: dict, credentials: dict | None = None,
           description: str | None = None) -> tuple[Integration, str | None]:
    """The new integration (enabled) and its signing secret when the provider has one: shown
    once, never again (stored sealed, as every credential)."""
    provider = providers.get(provider_key)
    name, description = _name(name), _description(description)
    if not has_feature(ctx.tenant, provider.feature):
        raise RuleViolation(f"{possessive(ctx.tenant.name)} plan does not include the provider “{provider.label}”. "
                            "Ask a system administrator for a plan (or a feature) with it.", field="provider")
    cleaned = providers.clean_config(provider, config or {})
    values = providers.clean_credentials(provider, credentials or {})
    lock_tenant(ctx.tenant)  # counted and created under the tenant's lock: no two pass the limit together
    used = db.session.scalar(select(func.count()).select_from(Integration)
                             .where(Integration.tenant_id == ctx.tenant_id))
    require_room(ctx.tenant, "max_integrations", used, field="name")
    integration = Integration(tenant_id=ctx.tenant_id, name=name, description=description, provider=provider.key,
                              config=cleaned, enabled=True, status=IntegrationStatus.PENDING,
                              created_by=ctx.user_id, next_sync_at=_now() if provider.syncs else None)
    db.session.add(integration)
    db.session.flush()  # the row id is the credentials' associated data and the audit row's resource
    secret = None
    if provider.signing_secret:
        secret = new_signing_secret()
        values["signing_secret"] = secret
    seal_credentials(integration, values)
    audit.record(ctx.tenant_id, ctx.user_id, "integration.create", "integration", integration.id,
                 after=snapshot(integration))
    return integration, secret


def update(ctx: TenantContext, integration: Integration, name: str, config: dict,
           description: str | None = None) -> Integration:
    provider = providers.get(integration.provider)
    before = snapshot(integration)
    integration.name, integration.description = _name(name), _description(description)
    cleaned = providers.clean_config(provider, config or {})
    if provider.syncs and cleaned.get("url") != (integration.config or {}).get("url"):
        integration.sync_cursor = None  # another source: start from its first page
    integration.config = cleaned
    after = snapshot(integration)
    if after != before:
        audit.record(ctx.tenant_id, ctx.user_id, "integration.update", "integration", integration.id,
                     before=before, after=after)
    return integration


def replace_credentials(ctx: TenantContext, integration: Integration, credentials: dict) -> str | None:
    """New credentials (write-only: the old ones are never shown). For a provider with a signing
    secret, a new secret is made and returned (shown once); the old one stops working at once."""
    provider = providers.get(integration.provider)
    values = providers.clean_credentials(provider, credentials or {})
    secret = None
    if provider.signing_secret:
        secret = new_signing_secret()
        values["signing_secret"] = secret
    elif not values:
        raise RuleViolation("Type the new credentials (the stored ones are never shown).",
                            field=provider.credentials[0].name if provider.credentials else None)
    seal_credentials(integration, values)
    audit.record(ctx.tenant_id, ctx.user_id, "integration.credentials", "integration", integration.id,
                 after={"name": integration.name, "provider": integration.provider,
                        "replaced": sorted(k for k in values if k != "signing_secret") or ["signing_secret"]})
    return secret


def set_enabled(ctx: TenantContext, integration: Integration, enabled: bool) -> None:
    if integration.enabled == enabled:
        raise RuleViolation(f"{integration.name} is already {'enabled' if enabled else 'disabled'}.")
    before = snapshot(integration)
    integration.enabled = enabled
    if enabled:
        integration.status = IntegrationStatus.PENDING
        integration.failures_in_row, integration.failing_since = 0, None
        if providers.get(integration.provider).syncs:
            integration.next_sync_at = _now()
    else:
        integration.status = IntegrationStatus.DISABLED
    audit.record(ctx.tenant_id, ctx.user_id, "integration.enable" if enabled else "integration.disable",
                 "integration", integration.id, before=before, after=snapshot(integration))


def delete(ctx: TenantContext, integration: Integration) -> None:
    audit.record(ctx.tenant_id, ctx.user_id, "integration.delete", "integration", integration.id,
                 before=snapshot(integration))
    db.session.delete(integration)  # its log and inbound ids go with it (ON DELETE CASCADE)


def _require_enabled(integration: Integration) -> None:
    if not integration.enabled:
        raise RuleViolation(f"{integration.name} is disabled: enable it first.")


def sync_now(ctx: TenantContext, integration: Integration) -> None:
    if not providers.get(integration.provider).syncs:
        raise RuleViolation("Only a source is synced.")
    _require_enabled(integration)
    audit.record(ctx.tenant_id, ctx.user_id, "integration.sync", "integration", integration.id,
                 after={"name": integration.name, "provider": integration.provider})
    # The source's lock keeps this run and a scheduled one apart (one after the other, from the cursor).
    defer_many("integrations.sync", [{"tenant_id": str(ctx.tenant_id), "integration_id": str(integration.id)}],
               lock=f"integration:{integration.id}")


def send_test(ctx: TenantContext, integration: Integration) -> LogEntry:
    if not providers.get(integration.provider).sends:
        raise RuleViolation("Only a webhook endpoint receives test events.")
    _require_enabled(integration)
    from .delivery import queue
    entry = queue(integration, "integration.test",
                  {"message": f"A test event from {ctx.tenant.name}: this endpoint receives its events."},
                  _now(), kind="test")
    audit.record(ctx.tenant_id, ctx.user_id, "integration.test", "integration", integration.id,
                 after={"name": integration.name, "provider": integration.provider})
    return entry


def replay(ctx: TenantContext, integration: Integration, entry: LogEntry) -> LogEntry:
    """Send a failed delivery again, as a new log entry with the same webhook-id (receivers that
    got it after all recognise it)."""
    if entry.kind not in ("delivery", "test") or entry.state != "failed":
        raise RuleViolation("Only a failed delivery can be replayed.")
    _require_enabled(integration)
    from .delivery import queue
    again = queue(integration, entry.event_type, entry.payload or {}, None, kind=entry.kind,
                  replay_of=entry.replay_of or entry.id)
    audit.record(ctx.tenant_id, ctx.user_id, "integration.replay", "integration", integration.id,
                 after={"name": integration.name, "event_type": entry.event_type, "entry": str(entry.id)})
    return again


# --- Reading ------------------------------------------------------------------------------------

def integrations(ctx: TenantContext) -> list[Integration]:
    return list(db.session.scalars(select(Integration).where(Integration.tenant_id == ctx.tenant_id)
                                   .order_by(Integration.name, Integration.id)))


def get(ctx: TenantContext, integration_id: UUID, *, for_update: bool = False) -> Integration | None:
    stmt = select(Integration).where(Integration.tenant_id == ctx.tenant_id, Integration.id == integration_id)
    # FOR NO KEY UPDATE: deliveries being queued (foreign keys to this row) do not wait for it.
    return db.session.scalar(stmt.with_for_update(key_share=True) if for_update else stmt)


def count(ctx: TenantContext) -> int:
    return db.session.scalar(select(func.count()).select_from(Integration)
                             .where(Integration.tenant_id == ctx.tenant_id)) or 0


LOG_PAGE = 25


def log_page(ctx: TenantContext, integration: Integration, before: tuple[datetime, UUID] | None = None,
             size: int = LOG_PAGE) -> tuple[list[LogEntry], tuple[datetime, UUID] | None]:
    """One keyset page of the log, newest first, and the anchor of the next page."""
    stmt = select(LogEntry).where(LogEntry.tenant_id == ctx.tenant_id, LogEntry.integration_id == integration.id)
    if before is not None:
        from sqlalchemy import tuple_
        stmt = stmt.where(tuple_(LogEntry.created_at, LogEntry.id) < tuple_(*before))
    rows = list(db.session.scalars(stmt.order_by(LogEntry.created_at.desc(), LogEntry.id.desc()).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    return rows, ((rows[-1].created_at, rows[-1].id) if more else None)


def log_entry(ctx: TenantContext, integration: Integration, entry_id: UUID) -> LogEntry | None:
    return db.session.scalar(select(LogEntry).where(LogEntry.tenant_id == ctx.tenant_id,
                                                    LogEntry.integration_id == integration.id,
                                                    LogEntry.id == entry_id))
