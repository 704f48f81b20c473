"""Who may see which sites: holders of `sites:see-all` every site, everyone else only the
sites they are assigned to, and only those sites' devices. Every read path of sites and
devices asks here with the request's TenantContext, so the rule is written once."""
from __future__ import annotations

from sqlalchemy import ColumnElement, Select, select, true

from ..tenancy import TenantContext
from .models import SiteAssignment


def may_see(ctx: TenantContext, site_id_column) -> ColumnElement[bool]:
    """A condition keeping only rows whose site (`site_id_column`) the actor may see.
    Part of the same statement: it costs no extra round trip."""
    if ctx.sees_all:
        return true()
    if ctx.client is not None:  # an API client restricted to sites
        return site_id_column.in_(ctx.client.site_ids or ())
    return site_id_column.in_(assigned_site_ids(ctx.tenant_id, ctx.user_id))


def assigned_site_ids(tenant_id, user_id) -> Select:
    """The ids of the sites a user is assigned to (values or bound parameters)."""
    return select(SiteAssignment.site_id).where(SiteAssignment.tenant_id == tenant_id,
                                                SiteAssignment.user_id == user_id)
