"""SCIM Groups: the provider's groups and who is in them. A member's role and sites follow the
groups they are in, through the organization's group mappings (portal/sso/groups.py, the same
rules as at an SSO sign-in: the most powerful mapped role wins, sites are the union, never
owner unless the mapping allows it). Services take the TenantContext, audit, never commit."""
from __future__ import annotations

from uuid import UUID

from sqlalchemy import delete, func, insert, select, update

from .. import audit
from ..extensions import db
from ..members import services as members
from ..rules import RuleViolation
from ..sites import services as site_services
from ..sites.models import Site
from ..sso import groups as sso_groups
from ..tenancy import TenantContext, roles
from ..tenancy.models import Membership, MembershipRole, MembershipStatus
from ..tenancy.queries import lock_tenant
from .errors import ScimError
from .models import ScimGroup, ScimGroupMember, ScimUser
from .resources import GroupData

# Someone provisioned outside every mapped group: the least a member can be (groups raise it).
PROVISIONED_ROLE = roles.system_role(MembershipRole.VIEWER)


def get_group(ctx: TenantContext, group_id: str) -> ScimGroup | None:
    try:
        gid = UUID(group_id)
    except ValueError:
        return None
    return db.session.scalar(select(ScimGroup).where(ScimGroup.tenant_id == ctx.tenant_id, ScimGroup.id == gid))


def _unique_name(ctx: TenantContext, name: str, but: UUID | None = None) -> None:
    stmt = select(ScimGroup.id).where(ScimGroup.tenant_id == ctx.tenant_id,
                                      func.lower(ScimGroup.display_name) == name.lower())
    if but is not None:
        stmt = stmt.where(ScimGroup.id != but)
    if db.session.scalar(stmt) is not None:
        raise ScimError(409, f"A group named {name} exists here already.", "uniqueness")


def _users(ctx: TenantContext, member_ids: list[str]) -> dict[UUID, str]:
    """The organization's SCIM users among `member_ids` ({id: userName}); any other is refused."""
    wanted = set()
    for value in member_ids:
        try:
            wanted.add(UUID(value))
        except ValueError:
            raise ScimError(400, f"No user {value} here: members are this organization's Users.",
                            "invalidValue") from None
    found = dict(db.session.execute(select(ScimUser.id, ScimUser.user_name).where(
        ScimUser.tenant_id == ctx.tenant_id, ScimUser.id.in_(wanted))).all()) if wanted else {}
    missing = sorted(str(m) for m in wanted - set(found))
    if missing:
        raise ScimError(400, f"No user {missing[0]} here: members are this organization's Users.", "invalidValue")
    return found


def _members(ctx: TenantContext, group_id: UUID) -> set[UUID]:
    return set(db.session.scalars(select(ScimGroupMember.scim_user_id).where(
        ScimGroupMember.tenant_id == ctx.tenant_id, ScimGroupMember.group_id == group_id)))


def _set_members(ctx: TenantContext, group: ScimGroup, wanted: dict[UUID, str]) -> tuple[set[UUID], set[UUID]]:
    now = _members(ctx, group.id)
    added, removed = set(wanted) - now, now - set(wanted)
    if removed:
        db.session.execute(delete(ScimGroupMember).where(
            ScimGroupMember.tenant_id == ctx.tenant_id, ScimGroupMember.group_id == group.id,
            ScimGroupMember.scim_user_id.in_(removed)))
    if added:
        db.session.execute(insert(ScimGroupMember), [
            {"tenant_id": ctx.tenant_id, "group_id": group.id, "scim_user_id": uid} for uid in added])
    _touch(ctx, added | removed)
    return added, removed


def _touch(ctx: TenantContext, scim_user_ids: set[UUID]) -> None:
    """A User's resource lists its groups: a change of them is a new version of it."""
    if scim_user_ids:
        db.session.execute(update(ScimUser).where(ScimUser.tenant_id == ctx.tenant_id,
                                                  ScimUser.id.in_(scim_user_ids))
                           .values(version=ScimUser.version + 1))


def create_group(ctx: TenantContext, data: GroupData) -> ScimGroup:
    lock_tenant(ctx.tenant)
    _unique_name(ctx, data.display_name)
    wanted = _users(ctx, data.member_ids)
    group = ScimGroup(tenant_id=ctx.tenant_id, display_name=data.display_name, external_id=data.external_id)
    db.session.add(group)
    db.session.flush()  # the id is the resource's, and the members reference it
    before = names_of(ctx, wanted)
    added, _ = _set_members(ctx, group, wanted)
    audit.record(ctx.tenant_id, None, "scim_group.create", "scim_group", group.id,
                 after={"name": group.display_name, "members": sorted(wanted[u] for u in added)})
    follow(ctx, before)
    return group


def replace_group(ctx: TenantContext, group: ScimGroup, data: GroupData) -> ScimGroup:
    """PUT, and PATCH once applied to a copy of the resource."""
    lock_tenant(ctx.tenant)
    if data.display_name.lower() != group.display_name.lower():
        _unique_name(ctx, data.display_name, but=group.id)
    wanted = _users(ctx, data.member_ids)
    before = {"name": group.display_name, "external_id": group.external_id}
    renamed = group.display_name != data.display_name
    now = _members(ctx, group.id)
    names = dict(db.session.execute(select(ScimUser.id, ScimUser.user_name).where(
        ScimUser.tenant_id == ctx.tenant_id, ScimUser.id.in_(now))).all())
    # A renamed group may map to another role: all its members follow, else only the changed ones.
    # Read before the rename, so that "before" holds the old name.
    was_in = names_of(ctx, (set(wanted) | now) if renamed else (set(wanted) ^ now))
    group.display_name, group.external_id = data.display_name, data.external_id
    added, removed = _set_members(ctx, group, wanted)
    after = {"name": group.display_name, "external_id": group.external_id}
    if before != after or added or removed:
        group.version += 1
        audit.record(ctx.tenant_id, None, "scim_group.update", "scim_group", group.id, before=before,
                     after=after | {"added": sorted(wanted[u] for u in added),
                                    "removed": sorted(names.get(u, "") for u in removed)})
    db.session.flush()  # the unique name index speaks here, inside the service
    follow(ctx, was_in)
    return group


def delete_group(ctx: TenantContext, group: ScimGroup) -> None:
    lock_tenant(ctx.tenant)
    before = names_of(ctx, _members(ctx, group.id))
    db.session.delete(group)
    db.session.flush()  # its members rows go with it (cascade) before their roles are worked out again
    _touch(ctx, set(before))
    audit.record(ctx.tenant_id, None, "scim_group.delete", "scim_group", group.id,
                 before={"name": group.display_name, "members": len(before)})
    follow(ctx, before)


def group_names(ctx: TenantContext, scim_user_id: UUID) -> list[str]:
    return list(db.session.scalars(
        select(ScimGroup.display_name).join(ScimGroupMember, (ScimGroupMember.tenant_id == ScimGroup.tenant_id)
                                            & (ScimGroupMember.group_id == ScimGroup.id))
        .where(ScimGroupMember.tenant_id == ctx.tenant_id, ScimGroupMember.scim_user_id == scim_user_id)
        .order_by(ScimGroup.display_name)))


def names_of(ctx: TenantContext, scim_user_ids) -> dict[UUID, list[str]]:
    """The groups each of these people is in now (before a change, to compare with after it)."""
    return {uid: group_names(ctx, uid) for uid in scim_user_ids}


def follow(ctx: TenantContext, before: dict[UUID, list[str]]) -> None:
    """Each of these people's role and sites follow the groups they are in now, through the
    organization's group mappings (sso.groups). Someone who leaves the last group that gave them
    something falls back to the role provisioning gives; a role given by hand to someone in no
    mapped group stays (a group change elsewhere is no reason to take it)."""
    for scim_user_id in sorted(before):
        row = db.session.execute(select(ScimUser, Membership).join(
            Membership, (Membership.tenant_id == ScimUser.tenant_id) & (Membership.user_id == ScimUser.user_id))
            .where(ScimUser.tenant_id == ctx.tenant_id, ScimUser.id == scim_user_id)).first()
        if row is None or row[1].status != MembershipStatus.ACTIVE:
            continue
        membership, names = row[1], group_names(ctx, scim_user_id)
        if sso_groups.apply(membership, names, source=source(ctx)):
            continue
        had = sso_groups.resolve(ctx.tenant_id, before[scim_user_id] or [])
        if had is not None and sso_groups.resolve(ctx.tenant_id, names) is None \
                and roles.role_of(membership) == had.role and not had.role.is_owner:
            _fall_back(ctx, membership, had)


def _fall_back(ctx: TenantContext, membership: Membership, had) -> None:
    """Out of every mapped group: the role provisioning gives, without the sites the groups gave."""
    try:
        members.set_further_roles(ctx, membership, [])  # the groups gave them too
        members.change_role(ctx, membership, PROVISIONED_ROLE)
        for site in db.session.scalars(select(Site).where(Site.tenant_id == ctx.tenant_id,
                                                          Site.id.in_(had.site_ids or ())).order_by(Site.id)):
            site_services.unassign_user_from_site(ctx, site, membership.user_id)
    except RuleViolation as exc:
        raise ScimError(400, exc.message) from None


def source(ctx: TenantContext) -> str:
    """How audit rows and notifications name the change: the token that caused it."""
    return f"SCIM token ‘{ctx.client.name}’" if ctx.client is not None else "SCIM provisioning"
