from __future__ import annotations

from uuid import UUID

from sqlalchemy import select

from ..extensions import db
from ..members.models import Membership, MembershipStatus
from ..tenants.models import Tenant, TenantStatus


def tenant_by_slug(slug: str) -> Tenant | None:
    return db.session.scalar(select(Tenant).where(Tenant.slug == slug))


def active_membership(tenant_id: UUID, user_id: UUID) -> Membership | None:
    return db.session.scalar(select(Membership).where(
        Membership.tenant_id == tenant_id, Membership.user_id == user_id,
        Membership.status == MembershipStatus.ACTIVE))


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
