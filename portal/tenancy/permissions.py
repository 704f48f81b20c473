"""Named permissions, mapped from roles in this one place."""
from __future__ import annotations

import enum

from ..members.models import MembershipRole


class Permission(enum.StrEnum):
    TENANT_VIEW = "tenant:view"
    SITES_VIEW = "sites:view"
    SITES_WRITE = "sites:write"
    DEVICES_VIEW = "devices:view"
    DEVICES_WRITE = "devices:write"
    MEMBERS_VIEW = "members:view"
    MEMBERS_MANAGE = "members:manage"
    INVITATIONS_MANAGE = "invitations:manage"
    AUDIT_VIEW = "audit:view"
    AUDIT_MANAGE = "audit:manage"  # audit retention (issue 12): owners only
    # Sites and devices (issue 4).
    SITES_ASSIGN = "sites:assign"  # assign members to sites
    SITES_SEE_ALL = "sites:see-all"  # every site and its devices; without it, only assigned sites
    DEVICES_STATUS = "devices:status"  # change the status of devices one can see


_READ = {Permission.TENANT_VIEW, Permission.SITES_VIEW, Permission.DEVICES_VIEW, Permission.MEMBERS_VIEW}
_MANAGE = _READ | {Permission.SITES_WRITE, Permission.DEVICES_WRITE, Permission.MEMBERS_MANAGE,
                   Permission.INVITATIONS_MANAGE, Permission.AUDIT_VIEW}

_MANAGE |= {Permission.SITES_ASSIGN, Permission.SITES_SEE_ALL, Permission.DEVICES_STATUS}
# Members may change the status of the devices at their sites; viewers only read.
_MEMBER = _READ | {Permission.DEVICES_STATUS}

ROLE_PERMISSIONS: dict[MembershipRole, frozenset[Permission]] = {
    MembershipRole.OWNER: frozenset(_MANAGE | {Permission.AUDIT_MANAGE}),
    MembershipRole.ADMIN: frozenset(_MANAGE),
    MembershipRole.MEMBER: frozenset(_MEMBER),
    MembershipRole.VIEWER: frozenset(_READ),
}


def role_can(role: MembershipRole | None, permission: Permission) -> bool:
    return role is not None and permission in ROLE_PERMISSIONS[role]
