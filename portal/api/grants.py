"""Connected apps: applications registered by a tenant (api_clients of kind "app"), the grants
people give them (consent), their single-use authorization codes and rotating refresh tokens.

An app is bound to the tenant that registered it: a person authorises it in that organization
only (they must be an active member there), so the authorization page needs no organization
picker. Its tokens act as that person, capped at each request by their role then (api/auth.py).
Services audit every change and never commit; codes and refresh tokens are stored as hashes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from .. import audit
from ..accounts.models import User
from ..database.context import tenant_scope
from ..extensions import db
from ..rules import RuleViolation
from ..tenancy import Permission, TenantContext
from ..tenancy.limits import require_room
from ..tenancy.permissions import parse
from ..tenancy.queries import lock_tenant
from ..tenants.plans import has_feature
from ..words import possessive
from . import credentials
from .models import ApiClient, ApiToken, OAuthAuthorizationCode, OAuthGrant, OAuthRefreshToken

NAME_MAX = 100
MAX_REDIRECT_URIS = 10
URI_MAX = 2000
CODE_TTL = timedelta(minutes=10)  # RFC 6749 4.1.2: ten minutes at most
REFRESH_TTL = timedelta(days=30)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Why a grant ended (revoked_reason): person, owner, refresh_reuse, code_reuse, member_removed,
# member_suspended, account, app_revoked; auditlog.describe says each in words.


def _now() -> datetime:
    return datetime.now(UTC)


# --- Applications ---------------------------------------------------------------------------

@dataclass
class AppData:
    name: str
    redirect_uris: list[str]
    public: bool
    scopes: list[str]


def redirect_uri_problem(uri: str) -> str | None:
    """Why a redirect URI cannot be registered, or None. HTTPS, or plain HTTP to the loopback
    interface only, with any port (RFC 8252 7.3: native apps listen on an ephemeral port);
    no fragment (RFC 6749 3.1.2). Matching is exact, so the URI is kept as typed."""
    if not uri or len(uri) > URI_MAX or any(c.isspace() for c in uri):
        return f"A redirect URI is one address of at most {URI_MAX} characters, without spaces."
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"{uri} is not a valid address."
    host = (parts.hostname or "").lower()
    if parts.fragment or "#" in uri:
        return f"{uri} has a fragment (#...): redirect URIs cannot have one."
    if parts.username or parts.password:
        return f"{uri} carries a user name or password: remove it."
    if not host:
        return f"{uri} has no host."
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _loopback(host):
        return None
    return f"{uri} must use https (plain http only to 127.0.0.1, [::1] or localhost)."


def _loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def app_snapshot(client: ApiClient) -> dict:
    return {"name": client.name, "scopes": sorted(client.scopes or []), "redirect_uris": list(client.redirect_uris),
            "public": client.is_public, "disabled": client.disabled_at is not None}


def _check(ctx: TenantContext, data: AppData) -> tuple[str, list[str], list[str]]:
    name = " ".join((data.name or "").split())
    if not name or len(name) > NAME_MAX:
        raise RuleViolation(f"Give the app a name of at most {NAME_MAX} characters.", field="name")
    uris = []
    for uri in data.redirect_uris:
        uri = uri.strip()
        if uri and uri not in uris:
            uris.append(uri)
    if not uris:
        raise RuleViolation("Give at least one redirect URI, one per line.", field="redirect_uris")
    if len(uris) > MAX_REDIRECT_URIS:
        raise RuleViolation(f"An app has at most {MAX_REDIRECT_URIS} redirect URIs.", field="redirect_uris")
    for uri in uris:
        problem = redirect_uri_problem(uri)
        if problem:
            raise RuleViolation(problem, field="redirect_uris")
    if not data.scopes or any(s not in Permission._value2member_map_ for s in data.scopes):
        raise RuleViolation("Choose at least one scope from the permission catalogue.", field="scopes")
    scopes = parse(data.scopes)
    beyond = sorted(p.value for p in scopes if not ctx.can(p))
    if beyond:
        raise RuleViolation(f"You cannot let an app ask for more than you hold yourself: {', '.join(beyond)}.",
                            field="scopes")
    return name, uris, sorted(p.value for p in scopes)


def create_app(ctx: TenantContext, data: AppData) -> tuple[ApiClient, str | None]:
    """The new app and, for a confidential one, its secret (shown once, stored as a hash). Apps
    are API clients of the plan (max_api_clients), counted with them under the tenant's lock."""
    name, uris, scopes = _check(ctx, data)
    if not has_feature(ctx.tenant, "api"):
        raise RuleViolation(f"{possessive(ctx.tenant.name)} plan does not include the API. Ask a system administrator "
                            "for a plan with it.", field="name")
    lock_tenant(ctx.tenant)
    used = db.session.scalar(select(func.count()).select_from(ApiClient).where(ApiClient.tenant_id == ctx.tenant_id))
    require_room(ctx.tenant, "max_api_clients", used, field="name")
    secret = None if data.public else credentials.new_secret()
    client = ApiClient(tenant_id=ctx.tenant_id, name=name, scopes=scopes, kind="app", redirect_uris=uris,
                       is_public=data.public, secret_hash=credentials.secret_hash(secret) if secret else None,
                       created_by=ctx.user_id)
    db.session.add(client)
    db.session.flush()  # the audit row names the new app's id
    audit.record(ctx.tenant_id, ctx.user_id, "oauth_app.create", "api_client", client.id, after=app_snapshot(client))
    return client, secret


def apps(ctx: TenantContext) -> list[ApiClient]:
    return list(db.session.scalars(select(ApiClient).where(ApiClient.tenant_id == ctx.tenant_id, ApiClient.kind == "app")
                                   .order_by(ApiClient.name, ApiClient.id)))


def get_app(ctx: TenantContext, client_id: UUID, *, for_update: bool = False) -> ApiClient | None:
    stmt = select(ApiClient).where(ApiClient.tenant_id == ctx.tenant_id, ApiClient.id == client_id,
                                   ApiClient.kind == "app")
    return db.session.scalar(stmt.with_for_update() if for_update else stmt)


def delete_app(ctx: TenantContext, client: ApiClient) -> None:
    audit.record(ctx.tenant_id, ctx.user_id, "oauth_app.delete", "api_client", client.id, before=app_snapshot(client))
    db.session.delete(client)  # its grants, codes and tokens go with it (ON DELETE CASCADE)


# --- Grants ---------------------------------------------------------------------------------

def _grant_snapshot(grant: OAuthGrant, app_name: str) -> dict:
    return {"app": app_name, "user_id": str(grant.user_id), "scopes": sorted(grant.scopes or [])}


def consent(ctx: TenantContext, client_id: UUID, app_name: str, scopes: list[str]) -> OAuthGrant:
    """The person (ctx's actor) allows the app these scopes: their live grant, created or
    updated to exactly these scopes (earlier tokens keep the scopes they were issued with)."""
    scopes = sorted(set(scopes))
    # Two Allows at once (two tabs) make one grant: the second waits on the unique index, then
    # finds the first's row.
    created = db.session.execute(
        pg_insert(OAuthGrant).values(tenant_id=ctx.tenant_id, client_ref=client_id, user_id=ctx.user_id, scopes=scopes)
        .on_conflict_do_nothing(index_elements=["tenant_id", "client_ref", "user_id"],
                                index_where=OAuthGrant.revoked_at.is_(None))
        .returning(OAuthGrant.id)).scalar()
    grant = db.session.scalar(select(OAuthGrant).where(
        OAuthGrant.tenant_id == ctx.tenant_id, OAuthGrant.client_ref == client_id, OAuthGrant.user_id == ctx.user_id,
        OAuthGrant.revoked_at.is_(None)).with_for_update().execution_options(populate_existing=True))
    if created is not None:
        audit.record(ctx.tenant_id, ctx.user_id, "oauth_grant.create", "oauth_grant", grant.id,
                     after=_grant_snapshot(grant, app_name))
    elif sorted(grant.scopes or []) != scopes:
        before = _grant_snapshot(grant, app_name)
        grant.scopes = scopes
        audit.record(ctx.tenant_id, ctx.user_id, "oauth_grant.update", "oauth_grant", grant.id, before=before,
                     after=_grant_snapshot(grant, app_name))
    return grant


@dataclass
class GrantRow:
    id: UUID
    app_id: UUID
    app_name: str
    user_id: UUID
    person: str
    email: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None


def tenant_grants(ctx: TenantContext) -> list[GrantRow]:
    """The live grants in this organization, for its owners and admins (api:manage)."""
    rows = db.session.execute(
        select(OAuthGrant, ApiClient.name, User.name, User.email)
        .join(ApiClient, (ApiClient.tenant_id == OAuthGrant.tenant_id) & (ApiClient.id == OAuthGrant.client_ref))
        .join(User, User.id == OAuthGrant.user_id)
        .where(OAuthGrant.tenant_id == ctx.tenant_id, OAuthGrant.revoked_at.is_(None))
        .order_by(ApiClient.name, User.name, OAuthGrant.created_at)).all()
    return [GrantRow(g.id, g.client_ref, app, g.user_id, person or email, email, sorted(g.scopes or []), g.created_at,
                     g.last_used_at) for g, app, person, email in rows]


def get_grant(tenant_id: UUID, grant_id: UUID, *, for_update: bool = False) -> OAuthGrant | None:
    stmt = select(OAuthGrant).where(OAuthGrant.tenant_id == tenant_id, OAuthGrant.id == grant_id)
    return db.session.scalar(stmt.with_for_update() if for_update else stmt)


def revoke_grant(tenant_id: UUID, actor_id: UUID | None, grant: OAuthGrant, reason: str) -> bool:
    """End a grant: every token, code and refresh token of it stops working at once (the token
    entry checks the grant). False when it had already ended."""
    if grant.revoked_at is not None:
        return False
    grant.revoked_at, grant.revoked_reason = _now(), reason
    app = db.session.scalar(select(ApiClient.name).where(ApiClient.tenant_id == tenant_id,
                                                          ApiClient.id == grant.client_ref)) or "an app"
    audit.record(tenant_id, actor_id, "oauth_grant.revoke", "oauth_grant", grant.id,
                 before=_grant_snapshot(grant, app), reason=reason)
    return True


_REVOKE_USER = text("SELECT * FROM portal_oauth_revoke_user_grants(:user_id, :tenant_id, :reason)")


def revoke_grants(user_id: UUID, *, tenant_id: UUID | None = None, reason: str = "account",
                  actor_id: UUID | None = None) -> int:
    """End every live grant of a person (in one organization, or everywhere): their apps' tokens
    stop working at once. Called when a member is removed or suspended, and when an account is
    suspended or closed (accounts.lifecycle.end_access). Works from any tenant context (one
    SECURITY DEFINER statement); each organization's audit log records its own grants."""
    rows = db.session.execute(_REVOKE_USER, {"user_id": user_id, "tenant_id": tenant_id, "reason": reason}).all()
    by_tenant: dict[UUID, list] = {}
    for row in rows:
        by_tenant.setdefault(row.tenant_id, []).append(row)
    for tid, revoked in by_tenant.items():
        with tenant_scope(db.session, tid, actor=None):
            names = dict(db.session.execute(select(ApiClient.id, ApiClient.name).where(
                ApiClient.tenant_id == tid, ApiClient.id.in_([r.client_ref for r in revoked]))).all())
            audit.record_many(tid, actor_id, "oauth_grant.revoke", "oauth_grant",
                              [(r.id, {"app": names.get(r.client_ref, "an app"), "user_id": str(user_id)}, None)
                               for r in revoked], reason=reason)
    return len(rows)


@dataclass
class MyGrant:
    id: UUID
    app_name: str
    tenant_id: UUID
    tenant_name: str
    tenant_slug: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None


def my_grants() -> list[MyGrant]:
    """The signed-in person's live grants in every organization (app.user_id), by organization."""
    rows = db.session.execute(text("SELECT * FROM portal_oauth_my_grants()")).all()
    return [MyGrant(r.g_id, r.c_name, r.t_id, r.t_name, r.t_slug, sorted(r.g_scopes or []), r.g_created_at,
                    r.g_last_used_at) for r in rows]


def touch(tenant_id: UUID, grant_id: UUID) -> None:
    db.session.execute(update(OAuthGrant).where(OAuthGrant.tenant_id == tenant_id, OAuthGrant.id == grant_id)
                       .values(last_used_at=func.now()))


# --- Codes and refresh tokens (the token endpoint, inside the app's tenant) -----------------

def save_code(tenant_id: UUID, grant_id: UUID, code: str, *, redirect_uri: str, scopes: list[str],
              challenge: str, method: str) -> None:
    db.session.add(OAuthAuthorizationCode(tenant_id=tenant_id, grant_ref=grant_id, code_hash=credentials.code_hash(code),
                                          redirect_uri=redirect_uri, scopes=scopes, code_challenge=challenge,
                                          code_challenge_method=method, expires_at=_now() + CODE_TTL))


@dataclass
class Found:
    """A code or refresh token found by its value, with its grant; `reused` when it had been used."""
    row: OAuthAuthorizationCode | OAuthRefreshToken
    grant: OAuthGrant
    reused: bool

    @property
    def live(self) -> bool:
        return not self.reused and self.grant.revoked_at is None and self.row.expires_at > _now()


def _find(model, column, value_hash: bytes, tenant_id: UUID, client_id: UUID) -> Found | None:
    # Locked: two redemptions of one code (or refresh token) at once cannot both succeed.
    row = db.session.scalar(select(model).where(model.tenant_id == tenant_id, column == value_hash).with_for_update())
    if row is None:
        return None
    grant = get_grant(tenant_id, row.grant_ref, for_update=True)
    if grant is None or grant.client_ref != client_id:
        return None  # another app's: answered like an unknown one
    return Found(row, grant, row.used_at is not None)


def find_code(tenant_id: UUID, client_id: UUID, code: str) -> Found | None:
    return _find(OAuthAuthorizationCode, OAuthAuthorizationCode.code_hash, credentials.code_hash(code), tenant_id,
                 client_id)


def find_refresh_token(tenant_id: UUID, client_id: UUID, token: str) -> Found | None:
    return _find(OAuthRefreshToken, OAuthRefreshToken.token_hash, credentials.refresh_hash(token), tenant_id,
                 client_id)


def mark_used(row) -> None:
    row.used_at = _now()


def issue(tenant_id: UUID, client_id: UUID, grant_id: UUID, access_token: str, scopes: list[str], expires_in: int,
          refresh_token: str | None, refresh_scopes: list[str]) -> None:
    db.session.add(ApiToken(tenant_id=tenant_id, client_ref=client_id, grant_ref=grant_id,
                            token_hash=credentials.token_hash(access_token), scopes=scopes,
                            expires_at=_now() + timedelta(seconds=expires_in)))
    if refresh_token:
        db.session.add(OAuthRefreshToken(tenant_id=tenant_id, grant_ref=grant_id,
                                         token_hash=credentials.refresh_hash(refresh_token), scopes=refresh_scopes,
                                         expires_at=_now() + REFRESH_TTL))
    touch(tenant_id, grant_id)


def prune_expired(tenant_id: UUID) -> int:
    """Codes and refresh tokens a day past their expiry (used ones too: reuse of an expired one
    is refused as unknown, which ends nothing but gives nothing either)."""
    before = _now() - timedelta(days=1)
    return sum(db.session.execute(delete(model).where(model.tenant_id == tenant_id, model.expires_at < before)).rowcount
               for model in (OAuthAuthorizationCode, OAuthRefreshToken))
