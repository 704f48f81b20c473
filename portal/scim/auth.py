"""How a SCIM request enters its organization: the same way an API request does.

`portal_scim_enter(token hash)` (migration 0025_scim, SECURITY DEFINER) is the only read of a
SCIM token before the tenant is known; it returns the tenant and the token and sets
app.tenant_id for the transaction (RLS). The request then runs in a TenantContext whose actor
is the token (tenancy.ClientPrincipal) with the provisioning role below, so the members and
invitations rules apply to it as to a person. Cookies are never read, so CSRF does not apply.
"""
from __future__ import annotations

from flask import g, request

from ..api.auth import bearer_token, rate_limit
from ..database.context import BOUNDS, adopt, timeouts
from ..extensions import db
from ..security import login as security_login
from ..security import network
from ..tenancy import ClientPrincipal, Permission, TenantContext
from ..tenancy.queries import attach_tenant
from ..tenancy.roles import Role
from . import tokens
from .errors import ScimError

# And what the function let the token do (the provisioning role's permissions), read back.
_ENTER = f"SELECT t.*, current_setting('app.permissions', true) AS db_permissions, {BOUNDS} FROM portal_scim_enter(%(hash)s) t"
CHALLENGE = 'Bearer realm="scim"'

# What an identity provider may do: everything a person of the organization may, short of being
# an owner. It is no system role, so no owner rule counts it as an owner: it cannot make an
# owner, nor suspend or remove one (a leaked token cannot take an organization from its owners).
PROVISIONING = Role("scim", "SCIM provisioning", "The organization's identity provider", frozenset(Permission))


def enter() -> TenantContext:
    token = bearer_token()
    if token is None:
        raise ScimError(401, "Send the organization's SCIM token: Authorization: Bearer <token>.",
                        headers={"WWW-Authenticate": CHALLENGE})
    row = db.session.connection().exec_driver_sql(_ENTER, {"hash": tokens.token_hash(token), **timeouts()}).first()
    if row is None or row.t_id is None:
        raise ScimError(401, "The SCIM token is not valid: unknown or revoked.",
                        headers={"WWW-Authenticate": CHALLENGE + ', error="invalid_token"'})
    rate_limit("scim", row.k_id)
    tenant = attach_tenant(row)
    if not tenant.is_readable:
        raise ScimError(403, f"{tenant.name} is {tenant.status.value.replace('_', ' ')}.")
    # The function has set them: later transactions of the request need them too.
    adopt(tenant_id=tenant.id, permissions=row.db_permissions)
    if not network.allowed(request.remote_addr, security_login.policy(tenant).get("ip_allowlist")):
        raise ScimError(403, f"{tenant.name} accepts connections only from its own networks.")
    role = PROVISIONING
    if tenant.is_read_only:
        if request.method not in ("GET", "HEAD"):
            raise ScimError(403, f"{tenant.name} is {tenant.status.value.replace('_', ' ')}: it can be read, "
                                 "not changed.")
        role = Role(role.key, role.name, role.description, frozenset(p for p in role.permissions if p.reads))
    ctx = g.tenant_context = TenantContext(tenant, None, role, g.get("request_id"),
                                           client=ClientPrincipal(row.k_id, row.k_name, kind="SCIM token"))
    g.audit_client_actor = {"type": "scim_token", "id": str(row.k_id), "name": row.k_name}
    return ctx
