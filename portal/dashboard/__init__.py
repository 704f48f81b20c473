"""The tenant dashboard: /t/<slug>/."""
from __future__ import annotations

from flask import Flask, g, render_template
from sqlalchemy import func, select

from ..devices.models import DeviceStatus
from ..devices.queries import count_by_status
from ..extensions import db
from ..members.models import Membership, MembershipStatus
from ..sites.models import Site
from ..sites.visibility import Viewer
from ..tenancy import requires, tenant_blueprint
from ..tenancy.permissions import Permission

bp = tenant_blueprint("dashboard", __name__)


@bp.get("/")
@requires(Permission.TENANT_VIEW)
def index():
    # RLS already limits every count to g.tenant; the filters say it for the reader too.
    # Sites and devices count only what this member may see (their assigned sites, unless
    # owner or admin).
    tid = g.tenant.id
    viewer = Viewer.current()
    sites = db.session.scalar(select(func.count()).select_from(Site).where(
        Site.tenant_id == tid, Site.archived_at.is_(None), viewer.may_see(Site.id)))
    members = db.session.scalar(select(func.count()).select_from(Membership).where(
        Membership.tenant_id == tid, Membership.status == MembershipStatus.ACTIVE))
    by_status = count_by_status(viewer)
    devices = [(status, by_status.get(status, 0)) for status in DeviceStatus]
    return render_template("dashboard/index.html", sites=sites, members=members, devices=devices,
                           device_total=sum(by_status.values()))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
