from __future__ import annotations

from uuid import UUID

from flask import g
from sqlalchemy import select

from ..database.context import adopt
from ..database.loaded import attach
from ..extensions import db
from ..members.models import Membership, MembershipRole, MembershipStatus
from ..tenants.models import Tenant, TenantStatus, TenantType


_ENTER_TENANT = "SELECT * FROM portal_enter_tenant(%(user_id)s, %(slug)s)"


def enter_tenant(slug: str, user_id: UUID) -> tuple[Tenant | None, Membership | None]:
    """The tenant and the user's active membership in it; app.tenant_id is set for the rest of
    the transaction only when the tenant is usable and the user a member. The membership is
    read through the `membership_self_read` policy (app.user_id, set when the user was loaded).

    On a tenant URL the session loader has already done this in its own round trip
    (security.sessions.load); otherwise one call of the same SQL function."""
    if not slug:
        return None, None
    ready = g.pop("tenant_entry", None)
    if ready is not None and ready[0] == slug and ready[1] == user_id:
        tenant, membership = ready[2]
    else:
        row = db.session.connection().exec_driver_sql(_ENTER_TENANT, {"user_id": user_id, "slug": slug}).first()
        tenant, membership = entered(row, user_id)
    if membership is None or not tenant.is_usable:
        return None, None
    adopt(tenant_id=tenant.id)
    return tenant, membership


def entered(row, user_id: UUID) -> tuple[Tenant | None, Membership | None]:
    """The tenant and membership of a `portal_enter_tenant` row (also part of
    `portal_request_context`'s), as ORM instances of this request's session."""
    if row is None or row.t_id is None or row.m_id is None:
        return None, None  # the function returns nothing for a tenant the user may not enter
    tenant = attach(Tenant, id=row.t_id, name=row.t_name, slug=row.t_slug, type=TenantType(row.t_type),
                    status=TenantStatus(row.t_status), domain=row.t_domain, max_users=row.t_max_users,
                    settings=row.t_settings, created_at=row.t_created_at)
    return tenant, attach(Membership, tenant_id=row.t_id, id=row.m_id, user_id=user_id,
                          role=MembershipRole(row.m_role), status=MembershipStatus(row.m_status),
                          last_active_at=row.m_last_active_at, accepted_at=row.m_accepted_at,
                          created_at=row.m_created_at)


def my_tenants(user_id: UUID) -> list[tuple[Tenant, Membership]]:
    """The user's usable tenants, across tenants. Reads only the user's own
    memberships, through the `membership_self_read` policy (requires app.user_id)."""
    rows = db.session.execute(
        select(Tenant, Membership)
        .join(Membership, Membership.tenant_id == Tenant.id)
        .where(Membership.user_id == user_id, Membership.status == MembershipStatus.ACTIVE,
               Tenant.status.in_([TenantStatus.ACTIVE, TenantStatus.PENDING]))
        .order_by(Tenant.name))
    return [(t, m) for t, m in rows]
