"""Custom roles: create, edit, delete (moving their holders to another role).

Services take the request's TenantContext explicitly, write their audit rows in the same
transaction and never commit. No escalation: a role never allows what its editor may not
do (tenancy.roles.may_edit_role, may_grant); the same rules guard forged requests.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import any_, func, select, update

from .. import audit
from ..extensions import db
from ..rules import RuleViolation
from ..tenancy import TenantContext, roles
from ..tenancy.models import Membership, TenantRole, TenantRolePermission, UserRole
from ..tenancy.permissions import Permission
from ..tenancy.queries import lock_tenant
from ..invitations.models import Invitation

MAX_CUSTOM_ROLES = 50
NAME_MAX, DESCRIPTION_MAX = 60, 300
# Every role opens the organization: a role without it could reach no page at all.
ALWAYS = frozenset({Permission.TENANT_VIEW})


@dataclass
class RoleData:
    name: str
    description: str = ""
    permissions: frozenset[Permission] = field(default_factory=frozenset)


def snapshot(role: roles.Role) -> dict:
    return {"name": role.name, "description": role.description,
            "permissions": sorted(p.value for p in role.permissions)}


def member_counts(ctx: TenantContext) -> dict[str, int]:
    """Members (active or suspended) per role key."""
    rows = db.session.execute(select(Membership.role, Membership.custom_role_id, func.count()).where(
        Membership.tenant_id == ctx.tenant_id).group_by(Membership.role, Membership.custom_role_id))
    counts = {(system.value if system else str(custom)): n for system, custom, n in rows}
    further = db.session.execute(select(UserRole.role_id, func.count()).where(
        UserRole.tenant_id == ctx.tenant_id).group_by(UserRole.role_id))
    for role_id, n in further:  # held as a further role counts too
        counts[str(role_id)] = counts.get(str(role_id), 0) + n
    return counts


def get_role(ctx: TenantContext, key: str) -> roles.Role | None:
    return roles.resolve(ctx.tenant_id, key)


def _check(ctx: TenantContext, data: RoleData, role_id=None) -> frozenset[Permission]:
    name = data.name.strip()
    if not name:
        raise RuleViolation("Give the role a name.", field="name")
    if len(name) > NAME_MAX:
        raise RuleViolation(f"Use at most {NAME_MAX} characters for the name.", field="name")
    if len(data.description) > DESCRIPTION_MAX:
        raise RuleViolation(f"Use at most {DESCRIPTION_MAX} characters for the description.", field="description")
    if any(name.lower() == r.name.lower() for r in roles.SYSTEM):
        raise RuleViolation(f"{name} is a built-in role: choose another name.", field="name")
    clash = select(TenantRole.id).where(TenantRole.tenant_id == ctx.tenant_id,
                                        func.lower(TenantRole.name) == name.lower())
    if role_id is not None:
        clash = clash.where(TenantRole.id != role_id)
    if db.session.scalar(clash) is not None:
        raise RuleViolation(f"A role named {name} already exists.", field="name")
    wanted = frozenset(data.permissions) | ALWAYS
    beyond = wanted - ctx.permissions
    if beyond and not ctx.is_owner:
        words = "; ".join(p.description.lower() for p in sorted(beyond, key=list(Permission).index))
        raise RuleViolation(f"You cannot give a role what your own role does not allow ({words}).",
                            field="permissions")
    return wanted


def _grant(ctx: TenantContext, row: TenantRole, permissions: frozenset[Permission]) -> None:
    row.grants = [TenantRolePermission(tenant_id=ctx.tenant_id, role_id=row.id, permission=p.value)
                  for p in sorted(permissions, key=list(Permission).index)]


def create_role(ctx: TenantContext, data: RoleData) -> roles.Role:
    lock_tenant(ctx.tenant)  # the cap and the name are checked under the tenant's lock
    count = db.session.scalar(select(func.count()).select_from(TenantRole).where(
        TenantRole.tenant_id == ctx.tenant_id)) or 0
    if count >= MAX_CUSTOM_ROLES:
        raise RuleViolation(f"An organization can have at most {MAX_CUSTOM_ROLES} custom roles.", field="name")
    permissions = _check(ctx, data)
    row = TenantRole(tenant_id=ctx.tenant_id, name=data.name.strip(), description=data.description.strip(),
                     created_by=ctx.user_id)
    db.session.add(row)
    db.session.flush()  # the role's id keys its permissions and the audit row
    _grant(ctx, row, permissions)
    db.session.flush()
    roles.forget()
    role = roles.custom_role(row)
    audit.record(ctx.tenant_id, ctx.user_id, "role.create", "role", row.id, after=snapshot(role))
    return role


def _row(ctx: TenantContext, role: roles.Role) -> TenantRole:
    return db.session.scalar(select(TenantRole).where(TenantRole.tenant_id == ctx.tenant_id,
                                                      TenantRole.id == role.custom_id).with_for_update())


def _editable(ctx: TenantContext, role: roles.Role) -> None:
    if not role.is_custom:
        raise RuleViolation(f"{role.name} is a built-in role: it cannot be changed. Create a custom role instead.")
    if not (ctx.is_owner or roles.may_edit_role(ctx, role)):
        raise RuleViolation(f"{role.name} allows more than your own role does: only an owner can change it.")


def update_role(ctx: TenantContext, role: roles.Role, data: RoleData) -> roles.Role:
    _editable(ctx, role)
    lock_tenant(ctx.tenant)
    permissions = _check(ctx, data, role.custom_id)
    row = _row(ctx, role)
    row.name, row.description = data.name.strip(), data.description.strip()
    _grant(ctx, row, permissions)
    db.session.flush()
    roles.forget()
    after = roles.custom_role(row)
    if snapshot(after) != snapshot(role):
        audit.record(ctx.tenant_id, ctx.user_id, "role.update", "role", row.id, before=snapshot(role),
                     after=snapshot(after))
    return after


def delete_role(ctx: TenantContext, role: roles.Role, fallback: roles.Role | None) -> int:
    """Delete a custom role; its members and invitations move to `fallback`, in this one
    transaction. Returns how many members moved."""
    _editable(ctx, role)
    lock_tenant(ctx.tenant)  # no one is given this role while it goes
    holders = db.session.scalars(select(Membership).where(Membership.tenant_id == ctx.tenant_id,
                                                          Membership.custom_role_id == role.custom_id)).all()
    invited = db.session.scalar(select(func.count()).select_from(Invitation).where(
        Invitation.tenant_id == ctx.tenant_id, Invitation.custom_role_id == role.custom_id)) or 0
    if holders or invited:
        if fallback is None or fallback.key == role.key:
            raise RuleViolation("Choose the role its members and invitations move to.", field="fallback")
        if not roles.may_grant(ctx, fallback):
            raise RuleViolation(f"You cannot give the role {fallback.name}.", field="fallback")
        for member in holders:
            if member.user_id != ctx.user_id and not roles.may_manage(ctx, role):
                raise RuleViolation(f"Only an owner can move the members of {role.name}.", field="fallback")
        audit.record_many(ctx.tenant_id, ctx.user_id, "member.role_change", "membership",
                          [(m.user_id, roles.role_of(m).snapshot() | {"status": m.status.value},
                            fallback.snapshot() | {"status": m.status.value}) for m in holders],
                          reason=f"role {role.name} deleted")
        db.session.execute(update(Membership).where(Membership.tenant_id == ctx.tenant_id,
                                                    Membership.custom_role_id == role.custom_id)
                           .values(**fallback.columns()).execution_options(synchronize_session=False))
        # Pending invitations are accepted with the fallback role (others keep a true record of
        # what they became: the audit row of their acceptance names the role).
        db.session.execute(update(Invitation).where(Invitation.tenant_id == ctx.tenant_id,
                                                    Invitation.custom_role_id == role.custom_id)
                           .values(**fallback.columns()).execution_options(synchronize_session=False))
    # Those who hold it as a further role keep their base role and lose this one (the foreign
    # key cascades); each change is audited. Invitations forget it.
    further = db.session.scalars(select(Membership).join(UserRole, (UserRole.tenant_id == Membership.tenant_id)
                                                         & (UserRole.membership_id == Membership.id)).where(
        UserRole.tenant_id == ctx.tenant_id, UserRole.role_id == role.custom_id)).all()
    if further:
        audit.record_many(ctx.tenant_id, ctx.user_id, "member.role_change", "membership",
                          [(m.user_id, roles.role_of(m).snapshot() | {"status": m.status.value},
                            roles.with_further(roles.base_of(m), [r for r in roles.role_of(m).further
                                                                  if r.key != role.key]).snapshot()
                            | {"status": m.status.value}) for m in further],
                          reason=f"role {role.name} deleted")
    db.session.execute(update(Invitation).where(Invitation.tenant_id == ctx.tenant_id,
                                                role.custom_id == any_(Invitation.extra_role_ids))
                       .values(extra_role_ids=func.array_remove(Invitation.extra_role_ids, role.custom_id))
                       .execution_options(synchronize_session=False))
    db.session.delete(_row(ctx, role))
    db.session.flush()  # the foreign keys rule here: no member may still hold the role
    db.session.expire_all()  # memberships changed behind the ORM's back
    roles.forget()
    audit.record(ctx.tenant_id, ctx.user_id, "role.delete", "role", role.custom_id, before=snapshot(role),
                 after={"moved_to": fallback.snapshot() if fallback else None, "members": len(holders),
                        "invitations": invited})
    return len(holders)
