"""How a bearer token enters its tenant: the same way a page does, through one SQL function.

`portal_api_enter_token(token hash)` (migration 0013, SECURITY DEFINER) is the only read of a
token before the tenant is known: for a live token of an enabled client it returns the tenant,
the client and the token's scopes, and sets app.tenant_id for the transaction (RLS), exactly
as portal_enter_tenant does for a member. The request then runs in a TenantContext whose
actor is the client (tenancy.ClientPrincipal) and whose permissions are the token's scopes.

A token an app holds for a person (authorization code, api/grants.py) is answered only while
its grant is live and the person is an active member; the function also returns their
membership and their role's permissions as they are now. The request's actor is then the
person, acting through the app (`ctx.via`), with the token's scopes capped by that role at
this request: a role lowered after consent lowers the token, a removal ends it.
Cookies are never read here, so CSRF (a cookie attack) does not concern these routes.
"""
from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from functools import wraps

from flask import current_app, g, request
from limits import parse

from ..database.context import BOUNDS, adopt, timeouts
from ..extensions import db, limiter
from ..security import login as security_login
from ..security import network
from ..tenancy import ClientPrincipal, Permission, TenantContext, current
from ..tenancy.permissions import parse as parse_scopes
from ..tenancy.queries import attach_tenant, client_role, entered
from ..tenancy.roles import Role
from . import credentials, grants
from .problems import Problem

# And, read back in the same statement, what the function let the token do (app.permissions,
# app.site_ids: a client's scopes and sites, a person's permissions within the scopes), and the
# request's bounds.
_ENTER = (f"SELECT t.*, current_setting('app.permissions', true) AS db_permissions, "
          f"current_setting('app.site_ids', true) AS db_site_ids, {BOUNDS} FROM portal_api_enter_token(%(hash)s) t")
CHALLENGE = 'Bearer realm="portal"'


def bearer_token() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value and len(value) <= 200 else None


def enter() -> TenantContext:
    """Authenticate the request's bearer token and enter its tenant; a Problem otherwise."""
    token = bearer_token()
    if token is None:
        raise Problem(401, "Send an access token: Authorization: Bearer <token> (POST /oauth/token).",
                      headers={"WWW-Authenticate": CHALLENGE})
    row = db.session.connection().exec_driver_sql(_ENTER, {"hash": credentials.token_hash(token), **timeouts()}).first()
    if row is None or row.t_id is None:
        raise Problem(401, "The access token is not valid: unknown, expired or revoked.",
                      headers={"WWW-Authenticate": CHALLENGE + ', error="invalid_token"'})
    rate_limit("api", row.c_id if row.g_id is None else f"{row.c_id}:{row.u_id}")
    tenant = attach_tenant(row)
    if not tenant.is_readable:
        raise Problem(423, f"{tenant.name} is {tenant.status.value.replace('_', ' ')}.")
    # The function has set them: later transactions of the request need them too.
    adopt(tenant_id=tenant.id, permissions=row.db_permissions, site_ids=row.db_site_ids)
    policy = security_login.policy(tenant)
    if not network.allowed(request.remote_addr, policy.get("ip_allowlist")):
        raise Problem(403, f"{tenant.name} accepts connections only from its own networks.")
    if row.g_id is not None:
        ctx = g.tenant_context = _as_person(row, tenant)
    else:
        site_ids = tuple(row.c_site_ids) if row.c_site_ids is not None else None
        client = ClientPrincipal(row.c_id, row.c_name, site_ids)
        ctx = TenantContext(tenant, None, client_role(row.c_name, row.k_scopes, tenant), g.get("request_id"),
                            client=client)
        g.tenant_context = ctx
        g.audit_client_actor = {"type": "api_client", "id": str(row.c_id), "name": row.c_name}
    if tenant.is_read_only and request.method not in ("GET", "HEAD"):
        raise Problem(423, f"{tenant.name} is {tenant.status.value.replace('_', ' ')}: it can be read, not changed.")
    return ctx


GRANT_TOUCH = timedelta(minutes=5)


def _as_person(row, tenant) -> TenantContext:
    """The person an app's token acts for, with what both their role now and the token allow.
    Which sites they see follows the person (sites:see-all is visibility, not an action)."""
    _, membership, role = entered(row, row.u_id)
    allowed = parse_scopes(row.k_scopes) | {Permission.SITES_SEE_ALL}
    permissions = role.permissions & allowed
    # An owner's standing (grant or take ownership, manage anyone) only goes with every permission:
    # an app holding a few of an owner's scopes acts as what those scopes allow, nothing more.
    system = role.system if not role.is_owner or permissions == role.permissions else None
    capped = Role(role.key, role.name, role.description, permissions, system=system, custom_id=role.custom_id)
    if request.method in ("GET", "HEAD") and (row.g_last_used_at is None
                                              or datetime.now(UTC) - row.g_last_used_at > GRANT_TOUCH):
        # "Last used" on the person's connected apps; only reads write it (a change request takes
        # the tenant lock first), at most once per five minutes.
        grants.touch(tenant.id, row.g_id)
    g.audit_via = {"type": "oauth_app", "id": str(row.c_id), "name": row.c_name}  # their audit rows say through what
    return TenantContext(tenant, membership, capped, g.get("request_id"), via=ClientPrincipal(row.c_id, row.c_name))


def rate_limit(scope: str, key) -> None:
    """Per client, in Flask-Limiter's storage (RATELIMIT_STORAGE_URI: shared across processes
    with redis://); 429 with Retry-After past API_RATE_LIMIT."""
    item = parse(current_app.config["API_RATE_LIMIT"])
    strategy = limiter.limiter
    try:
        allowed = strategy.hit(item, scope, str(key))
    except Exception:
        current_app.logger.warning("rate limit storage unavailable", exc_info=True)
        return
    if not allowed:
        reset = strategy.get_window_stats(item, scope, str(key)).reset_time
        retry = max(1, math.ceil(reset - time.time()))
        raise Problem(429, f"Too many requests for this client ({current_app.config['API_RATE_LIMIT']}).",
                      headers={"Retry-After": str(retry)})


def scope(permission: Permission):
    """Guard an API view: the token must carry `permission` (403 otherwise)."""
    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current().can(permission):
                raise Problem(403, f"This token does not carry the scope {permission.value}.",
                              headers={"WWW-Authenticate": CHALLENGE + f', error="insufficient_scope", '
                                                                        f'scope="{permission.value}"'})
            return view(*args, **kwargs)
        wrapped.scope = permission  # read by the API's authorization matrix test and the OpenAPI document
        return wrapped
    return decorator
