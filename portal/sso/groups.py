"""Provider groups become roles and sites (issue 25; also the SCIM Groups of portal/scim).

`resolve(tenant_id, group_names)`: the mappings the groups match, folded into one grant: the
most powerful mapped role is the base role (a role whose permissions include another's is stronger;
between roles that do not compare, the one with more permissions, then the system role), and every
other mapped custom role is held besides it (role sets, tenancy.roles); the sites are the
union of the matched mappings' sites. A mapping to the owner role counts only when its connection
allows ownership by mapping (an owner turned it on); otherwise it is skipped.

`apply(membership, group_names, source=...)`: the membership follows the grant. Its role changes
(audited, the member notified), except that an owner stays an owner unless ownership by mapping is
allowed, and the last owner is never demoted. When any matched mapping names sites, the member's
site assignments become exactly those sites; otherwise they are left as they are. No matching
mapping changes nothing: the role someone was given by hand stays.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from .. import audit
from ..extensions import db
from ..notifications import Kind, notify
from ..members.services import active_owner_count
from ..sites.models import Site, SiteAssignment
from ..tenancy import roles
from ..tenancy.models import Membership, MembershipStatus
from ..tenancy.queries import lock_tenant
from ..tenants.models import Tenant
from .models import SsoConnection, SsoGroupMapping

log = logging.getLogger("portal.sso")
MAX_GROUPS = 500  # a provider sending more is cut here (a claim is not a bulk API)


@dataclass(frozen=True)
class GroupGrant:
    role: roles.Role  # the base role, with the further roles (roles.with_further)
    site_ids: frozenset[UUID] | None  # None: no matched mapping names sites
    groups: tuple[str, ...] = field(default=())  # the groups that matched a mapping


def normalise(group_names) -> list[str]:
    """The `groups` claim as a list of strings: providers send a list, a single string, or nothing."""
    if isinstance(group_names, str):
        group_names = [group_names]
    if not isinstance(group_names, (list, tuple, set, frozenset)):
        return []
    return [str(g).strip() for g in list(group_names)[:MAX_GROUPS] if isinstance(g, (str, int)) and str(g).strip()]


def _strength(role: roles.Role) -> tuple:
    system_rank = {"owner": 4, "admin": 3, "member": 2, "viewer": 1}
    return (role.is_owner, len(role.permissions), system_rank.get(role.system.value if role.system else "", 0),
            role.name)


def stronger(a: roles.Role, b: roles.Role) -> roles.Role:
    """The more powerful of two roles (inclusion first, then the number of permissions)."""
    if a.is_owner != b.is_owner:
        return a if a.is_owner else b
    if a.permissions != b.permissions:
        if a.permissions > b.permissions:
            return a
        if b.permissions > a.permissions:
            return b
    return a if _strength(a) >= _strength(b) else b


def _path(group: str) -> str:
    return group if group.startswith("/") else "/" + group


def _matches(mapping: SsoGroupMapping, groups: set[str]) -> bool:
    # Keycloak's group mapper sends full paths (/acme/technicians) with "Full group path" on and
    # bare names without: a top-level group matches written either way (`admins` = `/admins`).
    return _path(mapping.group_name) in groups


def resolve(tenant_id: UUID, group_names, *, connection_id: UUID | None = None) -> GroupGrant | None:
    """The grant `group_names` earn in the tenant (through one connection's mappings, or all of the
    tenant's when None, as SCIM does), or None when no mapping matches. The caller has entered the
    tenant's RLS scope."""
    groups = {_path(g) for g in normalise(group_names)}
    if not groups:
        return None
    stmt = (select(SsoGroupMapping, SsoConnection.owner_by_mapping)
            .join(SsoConnection, (SsoConnection.tenant_id == SsoGroupMapping.tenant_id)
                  & (SsoConnection.id == SsoGroupMapping.connection_id))
            .where(SsoGroupMapping.tenant_id == tenant_id))
    if connection_id is not None:
        stmt = stmt.where(SsoGroupMapping.connection_id == connection_id)
    role, sites, matched, customs = None, None, [], {}
    for mapping, owner_allowed in db.session.execute(stmt.order_by(SsoGroupMapping.group_name)):
        if not _matches(mapping, groups):
            continue
        mapped = roles.resolve(tenant_id, mapping.role_key)
        if mapped is None:  # its custom role was deleted: the mapping gives nothing until edited
            continue
        if mapped.is_owner and not owner_allowed:
            continue
        matched.append(mapping.group_name)
        role = mapped if role is None else stronger(role, mapped)
        if mapped.is_custom:
            customs[mapped.key] = mapped
        if mapping.site_ids:
            sites = (sites or frozenset()) | frozenset(mapping.site_ids)
    if role is None:
        return None
    return GroupGrant(roles.with_further(role, list(customs.values())), sites, tuple(matched))


def _owner_allowed(tenant_id: UUID, connection_id: UUID | None) -> bool:
    stmt = select(SsoConnection.owner_by_mapping).where(SsoConnection.tenant_id == tenant_id)
    if connection_id is not None:
        stmt = stmt.where(SsoConnection.id == connection_id)
    return any(db.session.scalars(stmt))


def _actor(membership: Membership, source: str, connection_id: UUID | None) -> audit.Actor:
    return audit.Actor("sso", connection_id or membership.tenant_id, source)


def apply(membership: Membership, group_names, *, source: str, connection_id: UUID | None = None) -> bool:
    """Make the membership follow its groups; returns whether anything changed. Takes the tenant
    lock before any row it writes (database/conflicts.py), and writes the audit rows last."""
    grant = resolve(membership.tenant_id, group_names, connection_id=connection_id)
    if grant is None or membership.status != MembershipStatus.ACTIVE:
        return False
    tenant = db.session.get(Tenant, membership.tenant_id)
    lock_tenant(tenant)
    current = roles.role_of(membership)
    changed_role = _follow_role(membership, current, grant, tenant, source, connection_id)
    changed_sites = grant.site_ids is not None and _follow_sites(membership, grant.site_ids, tenant, source,
                                                                   connection_id)
    return changed_role or changed_sites


def _follow_role(membership: Membership, current: roles.Role, grant: GroupGrant, tenant: Tenant, source: str,
                 connection_id: UUID | None) -> bool:
    target = grant.role
    if target.key == current.key and {r.key for r in target.further} == {r.key for r in current.further}:
        return False
    if current.is_owner and not _owner_allowed(membership.tenant_id, connection_id):
        return False  # ownership is not the mappings' to take away unless an owner allowed it
    if current.is_owner and active_owner_count(membership.tenant_id) <= 1:
        log.info("groups would demote the last owner of %s: kept", tenant.slug)
        return False  # the last owner stays one, whatever the groups say
    before = current.snapshot() | {"status": membership.status.value}
    membership.role, membership.custom_role_id = target.system, target.custom_id
    db.session.flush()  # the last-owner trigger is deferred to commit; checked above for a clear outcome
    roles.hold_further(membership, list(target.further))
    audit.record(membership.tenant_id, _actor(membership, source, connection_id), "member.role_change", "membership",
                 membership.user_id, before=before, after=target.snapshot() | {"status": membership.status.value},
                 source=source, groups=list(grant.groups))
    notify(membership.tenant_id, [membership.user_id], Kind.ROLE_CHANGED,
           {"actor": source, "tenant": tenant.name, "before": current.name, "after": target.name},
           f"/t/{tenant.slug}/")
    return True


def _follow_sites(membership: Membership, wanted: frozenset[UUID], tenant: Tenant, source: str,
                  connection_id: UUID | None) -> bool:
    tenant_id, user_id = membership.tenant_id, membership.user_id
    have = set(db.session.scalars(select(SiteAssignment.site_id).where(SiteAssignment.tenant_id == tenant_id,
                                                                       SiteAssignment.user_id == user_id)))
    names = dict(db.session.execute(select(Site.id, Site.name).where(
        Site.tenant_id == tenant_id, Site.id.in_(have | set(wanted)))).all())
    active = set(db.session.scalars(select(Site.id).where(Site.tenant_id == tenant_id, Site.id.in_(wanted),
                                                          Site.archived_at.is_(None))))
    add, remove = active - have, have - set(wanted)
    if not add and not remove:
        return False
    if remove:
        db.session.execute(delete(SiteAssignment).where(SiteAssignment.tenant_id == tenant_id,
                                                        SiteAssignment.user_id == user_id,
                                                        SiteAssignment.site_id.in_(remove)))
    for site_id in sorted(add):
        db.session.execute(insert(SiteAssignment).values(tenant_id=tenant_id, site_id=site_id, user_id=user_id)
                           .on_conflict_do_nothing(constraint="uq_user_site_assignments_tenant_id_site_id_user_id"))
    added, removed = sorted(names[s] for s in add), sorted(names.get(s, "a deleted site") for s in remove)
    audit.record(tenant_id, _actor(membership, source, connection_id), "sso.sites_follow", "membership", user_id,
                 before={"sites": sorted(names.get(s, "?") for s in have)},
                 after={"sites": sorted(names[s] for s in (have - remove) | add)},
                 source=source, added=added, removed=removed)
    link = f"/t/{tenant.slug}/"
    for site in added:
        notify(tenant_id, [user_id], Kind.SITE_ASSIGNED, {"actor": source, "site": site, "tenant": tenant.name}, link)
    for site in removed:
        notify(tenant_id, [user_id], Kind.SITE_UNASSIGNED, {"actor": source, "site": site, "tenant": tenant.name}, link)
    return True
