"""The tenant dashboard: /t/<slug>/."""
from __future__ import annotations

from flask import Flask, render_template
from sqlalchemy import func, select

from ..devices.models import DeviceStatus
from ..devices.queries import count_by_status
from ..extensions import db
from ..tenancy.models import Membership, MembershipStatus
from ..sites.models import Site
from ..sites.visibility import may_see
from ..tenancy import Permission, current, requires, tenant_blueprint

bp = tenant_blueprint("dashboard", __name__)


@bp.get("/")
@requires(Permission.TENANT_VIEW)
def index():
    # RLS already limits every count to the tenant; the filters say it for the reader too.
    # Sites and devices count only what this member may see (their assigned sites, unless
    # their role sees every site).
    ctx = current()
    tid = ctx.tenant_id
    sites = db.session.scalar(select(func.count()).select_from(Site).where(
        Site.tenant_id == tid, Site.archived_at.is_(None), may_see(ctx, Site.id)))
    members = db.session.scalar(select(func.count()).select_from(Membership).where(
        Membership.tenant_id == tid, Membership.status == MembershipStatus.ACTIVE))
    by_status = count_by_status(ctx)
    devices = [(status, by_status.get(status, 0)) for status in DeviceStatus]
    return render_template("dashboard/index.html", sites=sites, members=members, devices=devices,
                           device_total=sum(by_status.values()))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
