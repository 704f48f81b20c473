"""API client rules: create, rotate, disable, enable and delete clients; issue and revoke
tokens. Services take the TenantContext, audit every change and never commit."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from flask import current_app
from sqlalchemy import func, select, update

from .. import audit
from ..words import possessive
from ..extensions import db
from ..rules import RuleViolation
from ..sites.models import Site
from ..tenancy import Permission, TenantContext
from ..tenancy.limits import require_room
from ..tenancy.queries import lock_tenant
from ..tenants.plans import has_feature
from ..tenancy.permissions import parse
from . import credentials
from .models import ApiClient, ApiToken

NAME_MAX = 100


@dataclass
class ClientData:
    name: str
    scopes: list[str]
    site_ids: list[UUID] | None = None  # None: every site


def snapshot(client: ApiClient) -> dict:
    return {"name": client.name, "scopes": sorted(client.scopes or []),
            "site_ids": sorted(str(s) for s in client.site_ids) if client.site_ids is not None else None,
            "disabled": client.disabled_at is not None}


def grace() -> timedelta:
    return timedelta(hours=current_app.config.get("API_SECRET_GRACE_HOURS", 24))


def _now() -> datetime:
    return datetime.now(UTC)


def grantable(ctx: TenantContext) -> list[Permission]:
    """The scopes an actor may give a client: what they hold themselves, never more."""
    return [p for p in Permission if ctx.can(p)]


def _check(ctx: TenantContext, data: ClientData) -> tuple[str, list[str], list[UUID] | None]:
    name = " ".join((data.name or "").split())
    if not name or len(name) > NAME_MAX:
        raise RuleViolation(f"Give the client a name of at most {NAME_MAX} characters.", field="name")
    unknown = [s for s in data.scopes if s not in Permission._value2member_map_]
    if unknown or not data.scopes:
        raise RuleViolation("Choose at least one scope from the permission catalogue.", field="scopes")
    scopes = parse(data.scopes)
    beyond = sorted(p.value for p in scopes if not ctx.can(p))
    if beyond:
        raise RuleViolation(f"You cannot give a client more than you hold yourself: {', '.join(beyond)}.",
                            field="scopes")
    site_ids = None
    if data.site_ids is not None:
        site_ids = sorted(set(data.site_ids))
        found = set(db.session.scalars(select(Site.id).where(Site.tenant_id == ctx.tenant_id, Site.id.in_(site_ids))))
        if not site_ids or found != set(site_ids):
            raise RuleViolation("Choose one or more of this organization's sites.", field="site_ids")
    return name, sorted(p.value for p in scopes), site_ids


def create_client(ctx: TenantContext, data: ClientData) -> tuple[ApiClient, str]:
    """The new client and its secret, which is shown once and never stored. The plan must include
    the API, and have room for one more client (max_api_clients)."""
    name, scopes, site_ids = _check(ctx, data)
    if not has_feature(ctx.tenant, "api"):
        raise RuleViolation(f"{possessive(ctx.tenant.name)} plan does not include the API. Ask a system administrator for a "
                            "plan with it.", field="name")
    lock_tenant(ctx.tenant)  # counted and created under the tenant's lock: no two pass the limit together
    used = db.session.scalar(select(func.count()).select_from(ApiClient).where(ApiClient.tenant_id == ctx.tenant_id))
    require_room(ctx.tenant, "max_api_clients", used, field="name")
    secret = credentials.new_secret()
    client = ApiClient(tenant_id=ctx.tenant_id, name=name, scopes=scopes, site_ids=site_ids,
                       secret_hash=credentials.secret_hash(secret), created_by=ctx.user_id)
    db.session.add(client)
    db.session.flush()  # the audit row names the new client's id
    audit.record(ctx.tenant_id, ctx.user_id, "api_client.create", "api_client", client.id, after=snapshot(client))
    return client, secret


def rotate_secret(ctx: TenantContext, client: ApiClient) -> str:
    """A new secret; the one it replaces keeps working for the grace period (API_SECRET_GRACE_HOURS),
    so deployments can switch over without downtime. A second rotation ends the first's grace."""
    secret = credentials.new_secret()
    now = _now()
    client.previous_secret_hash, client.previous_secret_expires_at = client.secret_hash, now + grace()
    client.secret_hash, client.rotated_at = credentials.secret_hash(secret), now
    audit.record(ctx.tenant_id, ctx.user_id, "api_client.rotate", "api_client", client.id,
                 after=snapshot(client), previous_valid_until=client.previous_secret_expires_at.isoformat())
    return secret


def set_disabled(ctx: TenantContext, client: ApiClient, disabled: bool) -> None:
    """A disabled client gets no token, and its tokens are revoked (enabling it again does not
    bring them back: it asks for new ones)."""
    if (client.disabled_at is not None) == disabled:
        raise RuleViolation(f"{client.name} is already {'disabled' if disabled else 'enabled'}.")
    before = snapshot(client)
    client.disabled_at = _now() if disabled else None
    if disabled:
        revoke_all_tokens(client.tenant_id, client.id)
    audit.record(ctx.tenant_id, ctx.user_id, "api_client.disable" if disabled else "api_client.enable",
                 "api_client", client.id, before=before, after=snapshot(client))


def delete_client(ctx: TenantContext, client: ApiClient) -> None:
    audit.record(ctx.tenant_id, ctx.user_id, "api_client.delete", "api_client", client.id, before=snapshot(client))
    db.session.delete(client)  # its tokens and idempotency keys go with it (ON DELETE CASCADE)


def clients(ctx: TenantContext) -> list[ApiClient]:
    """Client-credentials clients; apps are api/grants.py's."""
    return list(db.session.scalars(select(ApiClient).where(ApiClient.tenant_id == ctx.tenant_id,
                                                           ApiClient.kind == "service")
                                   .order_by(ApiClient.name, ApiClient.id)))


def get_client(ctx: TenantContext, client_id: UUID, *, for_update: bool = False) -> ApiClient | None:
    stmt = select(ApiClient).where(ApiClient.tenant_id == ctx.tenant_id, ApiClient.id == client_id,
                                   ApiClient.kind == "service")
    return db.session.scalar(stmt.with_for_update() if for_update else stmt)


# --- Tokens (called by the OAuth endpoints, inside the client's tenant) -------------------

def issue_token(tenant_id: UUID, client_id: UUID, token: str, scopes: list[str], expires_in: int) -> ApiToken:
    row = ApiToken(tenant_id=tenant_id, client_ref=client_id, token_hash=credentials.token_hash(token),
                   scopes=scopes, expires_at=_now() + timedelta(seconds=expires_in))
    db.session.add(row)
    return row


def find_token(tenant_id: UUID, token: str) -> ApiToken | None:
    """A token of this tenant (the authenticated client's) by its value, live or not."""
    return db.session.scalar(select(ApiToken).where(ApiToken.tenant_id == tenant_id,
                                                    ApiToken.token_hash == credentials.token_hash(token)))


def revoke_token(row: ApiToken) -> None:
    if row.revoked_at is None:
        row.revoked_at = _now()


def revoke_all_tokens(tenant_id: UUID, client_id: UUID) -> int:
    return db.session.execute(update(ApiToken).where(ApiToken.tenant_id == tenant_id, ApiToken.client_ref == client_id,
                                                     ApiToken.revoked_at.is_(None))
                              .values(revoked_at=_now())).rowcount


def prune_expired(tenant_id: UUID) -> int:
    """Tokens a day past their expiry, idempotency records past theirs, and apps' codes and
    refresh tokens a day past theirs (api/grants.py)."""
    from sqlalchemy import delete

    from .models import IdempotencyKey
    now = _now()
    tokens = db.session.execute(delete(ApiToken).where(ApiToken.tenant_id == tenant_id,
                                                       ApiToken.expires_at < now - timedelta(days=1))).rowcount
    keys = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id,
                                                           IdempotencyKey.expires_at < now)).rowcount
    from .grants import prune_expired as prune_grants
    return tokens + keys + prune_grants(tenant_id)
