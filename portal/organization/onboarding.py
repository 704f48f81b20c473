"""A new organization's first steps (seed 004's onboarding), shown to those who hold
`tenant:manage` on the dashboard until dismissed; each step ticks itself once done."""
from __future__ import annotations

from dataclasses import dataclass

from flask import url_for
from sqlalchemy import exists, func, select

from ..devices.models import Device
from ..extensions import db
from ..invitations.models import Invitation, InvitationStatus
from ..sites.models import Site
from ..tenancy import Permission, TenantContext, current_or_none
from ..tenancy.models import Membership


@dataclass(frozen=True)
class Step:
    label: str
    done: bool
    url: str


def checklist(ctx: TenantContext | None = None) -> list[Step] | None:
    """The steps, or None when there is nothing to show (not an owner, or dismissed)."""
    ctx = ctx or current_or_none()
    if ctx is None or not ctx.can(Permission.TENANT_MANAGE) or (ctx.tenant.settings or {}).get("onboarding_done"):
        return None
    tid = ctx.tenant_id
    # One statement for the four facts.
    row = db.session.execute(select(
        exists().where(Site.tenant_id == tid),
        exists().where(Device.tenant_id == tid),
        select(func.count()).select_from(Membership).where(Membership.tenant_id == tid).scalar_subquery() > 1,
        exists().where(Invitation.tenant_id == tid, Invitation.status == InvitationStatus.PENDING))).one()
    has_site, has_device, has_members, has_invitations = row
    security = (ctx.tenant.settings or {}).get("security") or {}
    return [Step("Add a site", has_site, url_for("sites.create")),
            Step("Add a device", has_device, url_for("devices.create")),
            Step("Invite a member", has_members or has_invitations, url_for("invitations.index")),
            Step("Require two-factor authentication", security.get("require_mfa") is True,
                 url_for("settings.security"))]
