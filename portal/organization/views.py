"""/t/<slug>/settings: name and contact, security policy, and usage against the plan."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from ..devices.models import Device, DeviceStatus
from ..extensions import db
from ..invitations.services import seats_used
from ..rules import RuleViolation
from ..security import login
from ..sites.models import Site
from ..tenancy import Permission, current, requires, tenant_blueprint
from ..tenants.plans import get_plan
from . import services
from .forms import ProfileForm, SecurityForm

bp = tenant_blueprint("settings", __name__, "/settings")


def _usage(ctx) -> list[tuple[str, int, int]]:
    """(what, used, allowed) for each limit of the plan, as the areas count them."""
    tenant = ctx.tenant
    sites = db.session.scalar(select(func.count()).select_from(Site).where(
        Site.tenant_id == ctx.tenant_id, Site.archived_at.is_(None))) or 0
    devices = db.session.scalar(select(func.count()).select_from(Device).where(
        Device.tenant_id == ctx.tenant_id, Device.status != DeviceStatus.DECOMMISSIONED)) or 0
    return [("Users (members and pending invitations)", seats_used(tenant), tenant.max_users),
            ("Active sites", sites, tenant.max_sites), ("Devices in service", devices, tenant.max_devices)]


def _page(profile=None, security=None, status: int = 200):
    ctx = current()
    return render_template("organization/settings.html", plan=get_plan(ctx.tenant.plan), usage=_usage(ctx),
                           profile=profile or ProfileForm(formdata=None, name=ctx.tenant.name,
                                                          contact_email=ctx.tenant.contact_email),
                           security=security or SecurityForm.for_policy(login.policy(ctx.tenant))), status


@bp.get("/")
@requires(Permission.TENANT_MANAGE)
def index():
    return _page()


@bp.post("/profile")
@requires(Permission.TENANT_MANAGE)
def profile():
    form = ProfileForm()
    if form.validate():
        try:
            services.update_profile(current(), form.to_data())
        except RuleViolation as exc:
            db.session.rollback()
            getattr(form, exc.field or "name").errors.append(exc.message)
        else:
            flash("Saved the organization's name and contact.", "success")
            return redirect(url_for(".index"), 303)
    return _page(profile=form, status=422)


@bp.post("/security")
@requires(Permission.TENANT_MANAGE)
def security():
    form = SecurityForm()
    if form.validate():
        try:
            services.update_security(current(), form.to_data(), request.remote_addr)
        except RuleViolation as exc:
            db.session.rollback()
            getattr(form, exc.field or "ip_allowlist").errors.append(exc.message)
        else:
            flash("Saved the security policy. It applies to every member's next request.", "success")
            return redirect(url_for(".index"), 303)
    return _page(security=form, status=422)
