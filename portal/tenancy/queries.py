from __future__ import annotations

from functools import lru_cache
from uuid import UUID

from flask import g, request
from sqlalchemy import select, text

from ..database.context import adopt
from ..database.driver import first_row
from ..database.loaded import Loaded
from ..extensions import db
from ..tenants.models import Tenant, TenantStatus, TenantType
from .models import Membership, MembershipRole, MembershipStatus
from .permissions import parse
from .roles import Role, system_role

# With the sites it let a member without sites:see-all read (app.site_ids), read back.
_ENTER_TENANT = "SELECT e.*, current_setting('app.site_ids', true) AS db_site_ids FROM portal_enter_tenant(%(user_id)s, %(slug)s) e"
NO_TENANT = "00000000-0000-0000-0000-000000000000"  # what portal_enter_tenant sets until it enters

Entry = tuple[Tenant, Membership, Role]


def enter_tenant(slug: str, user_id: UUID) -> Entry | None:
    """The tenant, the user's active membership in it and its role with its permissions, or
    None for anyone but an active member. app.tenant_id is set for the rest of the transaction
    only when the tenant is readable (active, pending, archived); a member of a suspended
    tenant gets its row (to be told why) and nothing else. The membership is read through the `membership_self_read` policy
    (app.user_id, set when the user was loaded).

    On a tenant URL the session loader has already done this in its own round trip
    (security.sessions.load); otherwise one call of the same SQL function."""
    if not slug:
        return None
    ready = g.pop("tenant_entry", None)
    if ready is not None and ready[0] == slug and ready[1] == user_id:
        entry = ready[2]  # its sites were adopted by the session loader
    else:
        row = first_row(db.session, _ENTER_TENANT, {"user_id": user_id, "slug": slug})
        entry = entered(row, user_id)
        adopt(site_ids=row.db_site_ids if entry is not None and entry[0].is_readable else "")
    if entry is None or not entry[0].is_readable:
        # The function has set the nil tenant: this request reads nothing of any tenant, in its
        # later transactions too (not the user's other organizations: policy member_read).
        adopt(tenant_id=NO_TENANT, permissions=(), actor="")
        return entry
    # The function has set them and cleared any actor: the permission and site policies read
    # them (migration 0027).
    adopt(tenant_id=entry[0].id, permissions=entry[2].permissions, actor="")
    return entry


class LoadedTenant(Loaded):
    """The request's tenant as the request-context function returned it (database.loaded)."""
    model = Tenant
    __slots__ = ()
    is_usable, is_read_only, is_readable = (Tenant.__dict__[name] for name in ("is_usable", "is_read_only",
                                                                               "is_readable"))


class LoadedMembership(Loaded):
    """The actor's membership as the request-context function returned it (database.loaded):
    `db.session.delete(m.orm)` where a mapped instance is needed."""
    model = Membership
    __slots__ = ()


def entered(row, user_id: UUID) -> Entry | None:
    """The tenant, membership and role of a `portal_enter_tenant` row (also part of
    `portal_request_context`'s), as values that become ORM instances of this request's session
    only when something needs one (database.loaded.Loaded)."""
    if row is None or row.t_id is None or row.m_id is None:
        return None  # the function returns nothing for a tenant the user may not enter
    tenant = attach_tenant(row)
    system = MembershipRole(row.m_role) if row.m_role else None
    membership = LoadedMembership(tenant_id=row.t_id, id=row.m_id, user_id=user_id, role=system,
                                  custom_role_id=row.m_custom_role_id, status=MembershipStatus(row.m_status),
                                  last_active_at=row.m_last_active_at, accepted_at=row.m_accepted_at,
                                  created_at=row.m_created_at)
    permissions = _parsed(tuple(row.r_permissions or ()))
    if tenant.is_read_only:  # an archived tenant: what the role may read, nothing it may change
        permissions = frozenset(p for p in permissions if p.reads)
    if system is not None:
        role = system_role(system)
        # The table is what the database enforces; the code's meaning must match it (drift test).
        # The name is the database's: "Viewer + Field technician" for a member with further roles.
        role = Role(role.key, row.r_name or role.name, role.description, permissions, system=system)
    else:
        role = Role(str(row.m_custom_role_id), row.r_name or "", "", permissions, custom_id=row.m_custom_role_id)
    return tenant, membership, role


def attach_tenant(row) -> LoadedTenant:
    """The tenant of a request-context function's row (its t_* columns)."""
    return LoadedTenant(id=row.t_id, name=row.t_name, slug=row.t_slug, type=TenantType(row.t_type),
                        status=TenantStatus(row.t_status), domain=row.t_domain, max_users=row.t_max_users,
                        settings=row.t_settings, created_at=row.t_created_at)


def client_role(name: str, scopes, tenant: Tenant) -> Role:
    """An API client's permissions as a role: its token's scopes (reads only in a read-only
    tenant, as for members). Not a system role, so no owner rule ever applies to a client."""
    permissions = parse(scopes)
    if tenant.is_read_only:
        permissions = frozenset(p for p in permissions if p.reads)
    return Role("api-client", name, "API client", permissions)


@lru_cache(maxsize=1024)
def _parsed(codes: tuple[str, ...]) -> frozenset:
    """permissions.parse, once per distinct list of codes (a handful of roles per process)."""
    return parse(codes)


def renamed(slug: str, user_id: UUID) -> str | None:
    """For a member, the URL of this request at their tenant's new address, when `slug` is one it
    left recently; None otherwise (and for everyone else: the same 404)."""
    if not slug:
        return None
    new = db.session.scalar(text("SELECT portal_slug_redirect(:u, :s)"), {"u": user_id, "s": slug})
    if not new:
        return None
    path = request.full_path.rstrip("?")
    return path.replace(f"/t/{slug}", f"/t/{new}", 1)


def lock_tenant(tenant: Tenant) -> None:
    """Serialise owner, seat, limit and role changes of one tenant (the last-owner trigger takes
    the same lock). Step 1 of the lock order (database.conflicts): before any row of the tenant
    is locked, and NO KEY so that inserts naming the tenant (their foreign-key check) never wait."""
    db.session.execute(select(Tenant.id).where(Tenant.id == tenant.id).with_for_update(key_share=True))


def my_tenants(user_id: UUID) -> list[tuple[Tenant, Membership]]:
    """The user's tenants (a suspended or archived one too, marked by its status), across tenants. Reads only the user's own
    memberships, through the `membership_self_read` policy (requires app.user_id)."""
    rows = db.session.execute(
        select(Tenant, Membership)
        .join(Membership, Membership.tenant_id == Tenant.id)
        .where(Membership.user_id == user_id, Membership.status == MembershipStatus.ACTIVE,
               Tenant.status != TenantStatus.PENDING_DELETION)
        .order_by(Tenant.name))
    return [(t, m) for t, m in rows]
