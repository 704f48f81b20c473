"""The tenant dashboard: /t/<slug>/."""
from __future__ import annotations

from flask import Flask, g, render_template
from sqlalchemy import func, select

from ..devices.models import Device, DeviceStatus
from ..extensions import db
from ..members.models import Membership, MembershipStatus
from ..sites.models import Site
from ..tenancy import requires, tenant_blueprint
from ..tenancy.permissions import Permission

bp = tenant_blueprint("dashboard", __name__)


@bp.get("/")
@requires(Permission.TENANT_VIEW)
def index():
    # RLS already limits every count to g.tenant; the filters say it for the reader too.
    tid = g.tenant.id
    sites = db.session.scalar(select(func.count()).select_from(Site).where(
        Site.tenant_id == tid, Site.archived_at.is_(None)))
    members = db.session.scalar(select(func.count()).select_from(Membership).where(
        Membership.tenant_id == tid, Membership.status == MembershipStatus.ACTIVE))
    by_status = dict(db.session.execute(
        select(Device.status, func.count()).where(Device.tenant_id == tid).group_by(Device.status)).all())
    devices = [(status, by_status.get(status, 0)) for status in DeviceStatus]
    return render_template("dashboard/index.html", sites=sites, members=members, devices=devices,
                           device_total=sum(by_status.values()))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
