"""The permission catalogue: named `resource:action` permissions, in this one place.

The enum is the source of truth; the `permissions` table mirrors it (migrations keep them
equal, tests/test_roles.py fails on drift). Later areas add their permissions here and a
migration adds the rows.
"""
from __future__ import annotations

import enum

from .models import MembershipRole


class Permission(enum.StrEnum):
    TENANT_VIEW = "tenant:view"
    TENANT_MANAGE = "tenant:manage"
    SITES_VIEW = "sites:view"
    SITES_WRITE = "sites:write"
    SITES_ASSIGN = "sites:assign"
    SITES_SEE_ALL = "sites:see-all"
    DEVICES_VIEW = "devices:view"
    DEVICES_WRITE = "devices:write"
    DEVICES_STATUS = "devices:status"
    MEMBERS_VIEW = "members:view"
    MEMBERS_MANAGE = "members:manage"
    INVITATIONS_MANAGE = "invitations:manage"
    ROLES_MANAGE = "roles:manage"
    AUDIT_VIEW = "audit:view"
    AUDIT_MANAGE = "audit:manage"
    TASKS_VIEW = "tasks:view"
    TASKS_WRITE = "tasks:write"
    TASKS_WORK = "tasks:work"
    API_MANAGE = "api:manage"
    AGENTS_MANAGE = "agents:manage"
    AGENTS_RUN = "agents:run"
    ANALYTICS_VIEW = "analytics:view"
    EVENTS_WRITE = "events:write"
    SSO_MANAGE = "sso:manage"

    @property
    def resource(self) -> str:
        return self.value.split(":", 1)[0]

    @property
    def action(self) -> str:
        return self.value.split(":", 1)[1]

    @property
    def reads(self) -> bool:
        """Only reads (or widens what is read): what remains of a role in a read-only tenant.
        Migration 0009's user_has_permission() says the same in SQL."""
        return self.action in READ_ACTIONS

    @property
    def category(self) -> str:
        return CATALOGUE[self][0]

    @property
    def description(self) -> str:
        return CATALOGUE[self][1]


READ_ACTIONS = ("view", "see-all")

# permission -> (category, what it lets a person do, in words); the order is the display order.
CATALOGUE: dict[Permission, tuple[str, str]] = {
    Permission.TENANT_VIEW: ("Organization", "Open the organization and its dashboard"),
    Permission.TENANT_MANAGE: ("Organization", "Change the organization's settings and security policy"),
    Permission.SITES_VIEW: ("Sites", "See sites"),
    Permission.SITES_WRITE: ("Sites", "Create, edit, archive and delete sites"),
    Permission.SITES_ASSIGN: ("Sites", "Assign members to sites"),
    Permission.SITES_SEE_ALL: ("Sites", "See every site and its devices (otherwise only assigned sites)"),
    Permission.DEVICES_VIEW: ("Devices", "See devices and export them"),
    Permission.DEVICES_WRITE: ("Devices", "Add, edit, move, import and decommission devices"),
    Permission.DEVICES_STATUS: ("Devices", "Change the status of devices they can see"),
    Permission.MEMBERS_VIEW: ("Members", "See the member list"),
    Permission.MEMBERS_MANAGE: ("Members", "Change roles, suspend and remove members"),
    Permission.INVITATIONS_MANAGE: ("Members", "Invite people and manage invitations"),
    Permission.ROLES_MANAGE: ("Members", "Create, edit and delete custom roles"),
    Permission.AUDIT_VIEW: ("Audit", "Read the audit log"),
    Permission.AUDIT_MANAGE: ("Audit", "Set how long the audit log is kept"),
    Permission.TASKS_VIEW: ("Tasks", "See tasks at their sites, with no site, and those assigned to or created by them"),
    Permission.TASKS_WRITE: ("Tasks", "Create tasks at the sites they see and edit any task they see"),
    Permission.TASKS_WORK: ("Tasks", "Change the status of and comment on tasks assigned to them"),
    Permission.API_MANAGE: ("API", "Create, rotate, disable and delete API clients"),
    Permission.AGENTS_MANAGE: ("Agents", "Give devices agent credentials, rotate and revoke them; run custom commands"),
    Permission.AGENTS_RUN: ("Agents", "Send commands to the agents of devices they can see and read the results"),
    Permission.ANALYTICS_VIEW: ("Analytics", "See the analytics charts of any event type"),
    Permission.EVENTS_WRITE: ("Analytics", "Record custom analytics events"),
    Permission.SSO_MANAGE: ("Organization", "Set up single sign-on: connections, verified domains, group mappings"),
}

_READ = frozenset({Permission.TENANT_VIEW, Permission.SITES_VIEW, Permission.DEVICES_VIEW,
                   Permission.MEMBERS_VIEW, Permission.TASKS_VIEW})

# The system roles' meanings. Owners hold every permission, admins all but the organization's
# settings and the audit log's retention; what only an owner may do besides (grant ownership,
# transfer it) are rules in tenancy.roles, not permissions.
OWNERS_ONLY = frozenset({Permission.TENANT_MANAGE, Permission.AUDIT_MANAGE, Permission.SSO_MANAGE})
SYSTEM_ROLES: dict[MembershipRole, tuple[str, str, frozenset[Permission]]] = {
    MembershipRole.OWNER: ("Owner", "Full control, including ownership and billing decisions",
                           frozenset(Permission)),
    MembershipRole.ADMIN: ("Admin", "Manages sites, devices, members and roles",
                           frozenset(Permission) - OWNERS_ONLY),
    MembershipRole.MEMBER: ("Member", "Works with the devices at their sites",
                            _READ | {Permission.DEVICES_STATUS, Permission.TASKS_WRITE, Permission.TASKS_WORK,
                                     Permission.AGENTS_RUN}),
    MembershipRole.VIEWER: ("Viewer", "Reads everything at their sites, changes nothing", _READ),
}


def grouped(permissions) -> list[tuple[str, list[Permission]]]:
    """`permissions` in catalogue order, grouped by category, for pages."""
    groups: dict[str, list[Permission]] = {}
    for permission in CATALOGUE:
        if permission in permissions:
            groups.setdefault(permission.category, []).append(permission)
    return list(groups.items())


def parse(values) -> frozenset[Permission]:
    """Permission codes read from the database or a form; unknown codes are dropped."""
    known = {p.value for p in Permission}
    return frozenset(Permission(v) for v in values or () if v in known)
