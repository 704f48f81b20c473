"""Who may see which sites: owners and admins every site, members and viewers only the
sites they are assigned to, and only those sites' devices. Every read path of sites and
devices goes through a Viewer, so the rule is written once."""
from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from flask import g
from sqlalchemy import ColumnElement, Select, select, true

from ..tenancy import can
from ..tenancy.permissions import Permission
from .models import SiteAssignment


@dataclass(frozen=True)
class Viewer:
    tenant_id: UUID
    user_id: UUID
    sees_all: bool

    @classmethod
    def current(cls) -> Viewer:
        """The signed-in member of the tenant of this request."""
        return cls(g.tenant.id, g.membership.user_id, can(Permission.SITES_SEE_ALL))

    def assigned_site_ids(self) -> Select:
        return assigned_site_ids(self.tenant_id, self.user_id)

    def may_see(self, site_id_column) -> ColumnElement[bool]:
        """A condition keeping only rows whose site (`site_id_column`) this viewer may see.
        Part of the same statement: it costs no extra round trip."""
        if self.sees_all:
            return true()
        return site_id_column.in_(self.assigned_site_ids())


def assigned_site_ids(tenant_id, user_id) -> Select:
    """The ids of the sites a user is assigned to (values or bound parameters)."""
    return select(SiteAssignment.site_id).where(SiteAssignment.tenant_id == tenant_id,
                                                SiteAssignment.user_id == user_id)
