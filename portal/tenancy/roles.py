"""Roles as the rest of the portal sees them, and the rules about roles, written once.

A role is a system role (owner, admin, member, viewer: the same in every tenant) or one of
the tenant's custom roles. A member holds a base role (one of either kind: the owner rules read
it) and any number of further custom roles (`user_roles`); what they may do is the union.
System roles nest, so holding two of them would mean the higher one: at most one is held. Everything that names a role by its kind is in this module: the
owner rules, who may manage whom, and which roles an actor may hand out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from flask import g
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import joinedload

from ..extensions import db
from .models import Membership, MembershipRole, MembershipStatus, TenantRole, TenantRolePermission, UserRole
from .permissions import SYSTEM_ROLES, Permission, parse

if TYPE_CHECKING:
    from .context import TenantContext


@dataclass(frozen=True)
class Role:
    key: str  # the system role's name, or the custom role's id: what forms submit
    name: str
    description: str
    permissions: frozenset[Permission]
    system: MembershipRole | None = None
    custom_id: UUID | None = None
    further: tuple[Role, ...] = ()  # further custom roles held besides this base role

    @property
    def is_owner(self) -> bool:
        return self.system == MembershipRole.OWNER

    @property
    def sees_all(self) -> bool:
        return Permission.SITES_SEE_ALL in self.permissions

    @property
    def is_custom(self) -> bool:
        return self.custom_id is not None

    @property
    def base_name(self) -> str:
        return self.name.split(" + ", 1)[0] if self.further else self.name

    def columns(self) -> dict:
        """The values of a membership's or invitation's base role (role, custom_role_id)."""
        return {"role": self.system, "custom_role_id": self.custom_id}

    def snapshot(self) -> dict:
        """How audit rows name a role (and the further roles, when there are any)."""
        return {"role": self.system.value if self.system else self.base_name,
                **({"custom_role_id": str(self.custom_id)} if self.custom_id else {}),
                **({"further_roles": [r.name for r in self.further]} if self.further else {})}


def with_further(base: Role, further: list[Role]) -> Role:
    """The base role and further roles as one: their names joined, the union of permissions."""
    further = tuple(sorted((r for r in further if r.key != base.key), key=lambda r: r.name.lower()))
    if not further:
        return base
    return Role(base.key, " + ".join([base.name, *(r.name for r in further)]), base.description,
                base.permissions.union(*(r.permissions for r in further)), system=base.system,
                custom_id=base.custom_id, further=further)


def system_role(key: MembershipRole) -> Role:
    name, description, permissions = SYSTEM_ROLES[key]
    return Role(key.value, name, description, permissions, system=key)


SYSTEM = [system_role(key) for key in MembershipRole]
OWNER = system_role(MembershipRole.OWNER)
DEFAULT = system_role(MembershipRole.MEMBER)  # preselected when inviting
FORMER_OWNER = system_role(MembershipRole.ADMIN)  # what an owner becomes after handing ownership over


def custom_role(row: TenantRole) -> Role:
    return Role(str(row.id), row.name, row.description or "", parse(grant.permission for grant in row.grants),
                custom_id=row.id)


def custom_roles(tenant_id: UUID) -> list[Role]:
    # The grants in the same statement, joined on (tenant_id, id): a selectin load would ask for
    # them by a list of (tenant_id, role_id) pairs, which a sharded database sends to every shard.
    rows = db.session.scalars(select(TenantRole).where(TenantRole.tenant_id == tenant_id)
                              .options(joinedload(TenantRole.grants))
                              .order_by(func.lower(TenantRole.name))).unique()
    return [custom_role(r) for r in rows]


def tenant_roles(tenant_id: UUID) -> list[Role]:
    """Every role of a tenant: the system roles first, then its own by name."""
    return SYSTEM + custom_roles(tenant_id)


def resolve(tenant_id: UUID, key: str | None) -> Role | None:
    """The role a form names (a system role's name or a custom role's id) in this tenant."""
    if not key:
        return None
    if key in MembershipRole._value2member_map_:
        return system_role(MembershipRole(key))
    try:
        role_id = UUID(key)
    except ValueError:
        return None
    row = db.session.scalar(select(TenantRole).where(TenantRole.tenant_id == tenant_id, TenantRole.id == role_id))
    return custom_role(row) if row else None


def book(tenant_id: UUID) -> dict[str, Role]:
    """Every role of a tenant by key, read once per request (pages list many members)."""
    cache = g.setdefault("role_book", {})
    if tenant_id not in cache:
        cache[tenant_id] = {r.key: r for r in tenant_roles(tenant_id)}
    return cache[tenant_id]


def hold_further(membership, further: list[Role]) -> None:
    """Make `further` exactly the custom roles the membership holds besides its base role (the
    caller has checked the rules and taken the tenant lock)."""
    db.session.execute(delete(UserRole).where(UserRole.tenant_id == membership.tenant_id,
                                              UserRole.membership_id == membership.id))
    if further:
        db.session.execute(insert(UserRole), [{"tenant_id": membership.tenant_id, "membership_id": membership.id,
                                               "role_id": r.custom_id} for r in further])
    forget()


def forget() -> None:
    """After a change to roles or to who holds them: the next `book()` reads them again."""
    g.pop("role_book", None)
    g.pop("further_roles", None)


def _lookup(tenant_id: UUID, key: str) -> Role | None:
    found = book(tenant_id).get(key)
    if found is None:  # created in this request after the book was read
        forget()
        found = book(tenant_id).get(key)
    return found


def further_keys(tenant_id: UUID) -> dict[UUID, list[str]]:
    """Membership id -> the further roles' keys, for a whole tenant, read once per request."""
    cache = g.setdefault("further_roles", {})
    if tenant_id not in cache:
        rows = db.session.execute(select(UserRole.membership_id, UserRole.role_id)
                                  .where(UserRole.tenant_id == tenant_id))
        found: dict[UUID, list[str]] = {}
        for membership_id, role_id in rows:
            found.setdefault(membership_id, []).append(str(role_id))
        cache[tenant_id] = found
    return cache[tenant_id]


def base_of(holder) -> Role:
    """The base role of a Membership or an Invitation."""
    return system_role(holder.role) if holder.role is not None else _lookup(holder.tenant_id, str(holder.custom_role_id))


def role_of(holder) -> Role:
    """The role of a Membership or an Invitation: its base role with any further roles."""
    base = base_of(holder)
    if isinstance(holder, Membership) or getattr(holder, "model", None) is Membership:
        keys = further_keys(holder.tenant_id).get(holder.id, ())
    else:
        keys = [str(k) for k in (getattr(holder, "extra_role_ids", None) or ())]
    further = [r for r in (_lookup(holder.tenant_id, k) for k in keys) if r is not None]
    return with_further(base, further)


# --- The rules. Owners are the only role named in a rule. ---------------------------------

def may_grant(ctx: TenantContext, role: Role) -> bool:
    """Nobody hands out more than they hold; only owners hand out ownership."""
    if role.is_owner:
        return ctx.is_owner
    return ctx.is_owner or role.permissions <= ctx.permissions


def assignable_roles(ctx: TenantContext, roles: list[Role] | None = None) -> list[Role]:
    """The roles this actor may give: one answer for the members page, invitations and roles."""
    return [r for r in (roles if roles is not None else tenant_roles(ctx.tenant.id)) if may_grant(ctx, r)]


def may_manage(ctx: TenantContext, target: Role) -> bool:
    """Owners manage anyone; others manage people whose role holds strictly less than theirs
    (so an admin manages members and viewers, never another admin or an owner)."""
    if ctx.is_owner:
        return True
    return not target.is_owner and target.permissions < ctx.permissions


def may_edit_role(ctx: TenantContext, role: Role) -> bool:
    """Custom roles only, and only those within the actor's own permissions."""
    return role.is_custom and role.permissions <= ctx.permissions


def may_transfer(ctx: TenantContext, target: Membership) -> bool:
    """An owner hands ownership to another active member (and becomes an admin)."""
    return ctx.is_owner and target.status == MembershipStatus.ACTIVE and not is_owner(target) \
        and target.user_id != ctx.user_id


def is_owner(membership: Membership) -> bool:
    return membership.role == MembershipRole.OWNER


def holds_condition(permission: Permission):
    """SQL: the membership's role holds `permission` (a system role by the catalogue's meaning,
    which the drift test keeps equal to the table; a custom role by its grants). For set-based
    choices of people, such as who hears of a device error, without naming roles."""
    systems = [role for role, (_, _, granted) in SYSTEM_ROLES.items() if permission in granted]
    custom = select(TenantRolePermission.role_id).where(TenantRolePermission.tenant_id == Membership.tenant_id,
                                                        TenantRolePermission.permission == permission.value)
    further = select(UserRole.membership_id).join(
        TenantRolePermission, (TenantRolePermission.tenant_id == UserRole.tenant_id)
        & (TenantRolePermission.role_id == UserRole.role_id)).where(
        UserRole.tenant_id == Membership.tenant_id, TenantRolePermission.permission == permission.value)
    return Membership.role.in_(systems) | Membership.custom_role_id.in_(custom) | Membership.id.in_(further)


def owner_condition():
    """SQL: an active owner membership (the last-owner rule counts these)."""
    return (Membership.role == MembershipRole.OWNER) & (Membership.status == MembershipStatus.ACTIVE)
