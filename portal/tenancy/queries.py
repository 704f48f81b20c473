from __future__ import annotations

from uuid import UUID

from sqlalchemy import String, and_, case, cast, func, select
from sqlalchemy.orm import lazyload

from ..database.context import adopt
from ..extensions import db
from ..members.models import Membership, MembershipStatus
from ..tenants.models import Tenant, TenantStatus


def enter_tenant(slug: str, user_id: UUID) -> tuple[Tenant | None, Membership | None]:
    """The tenant and the user's active membership in it, in one statement that also sets
    app.tenant_id for the rest of the transaction, only when the tenant is usable and the
    user a member. The membership is read before any tenant is set, through the
    `membership_self_read` policy (app.user_id, set when the user was loaded)."""
    usable = and_(Membership.id.is_not(None), Tenant.status.in_([TenantStatus.ACTIVE, TenantStatus.PENDING]))
    scope = func.set_config("app.tenant_id", case((usable, cast(Tenant.id, String)), else_=""), True)
    # Tenants differ in size by orders of magnitude: a generic plan (chosen for a statement
    # psycopg has prepared) assumes an average tenant and can be 50x slower for a big one.
    # Plan each statement of the transaction for its own tenant and values.
    custom_plans = func.set_config("plan_cache_mode", "force_custom_plan", True)
    row = db.session.execute(
        select(Tenant, Membership, scope, custom_plans)
        .outerjoin(Membership, and_(Membership.tenant_id == Tenant.id, Membership.user_id == user_id,
                                    Membership.status == MembershipStatus.ACTIVE))
        .where(Tenant.slug == slug)
        # The member is current_user: loading their user row again with the membership only costs.
        .options(lazyload(Membership.user))).first()
    if row is None or row[1] is None or not row[0].is_usable:
        return None, None
    adopt(tenant_id=row[0].id)
    return row[0], row[1]


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
