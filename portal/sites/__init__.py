"""Sites of a tenant: /t/<slug>/sites."""
from __future__ import annotations

from flask import Flask, g, render_template, request
from sqlalchemy import func, select

from ..devices.models import Device
from ..extensions import db
from ..tenancy import requires, tenant_blueprint
from ..tenancy.permissions import Permission
from .models import Site

bp = tenant_blueprint("sites", __name__, "/sites")
PAGE_SIZE = 50


@bp.get("/")
@requires(Permission.SITES_VIEW)
def index():
    after = request.args.get("after", "")
    device_count = (select(func.count()).where(Device.tenant_id == Site.tenant_id, Device.site_id == Site.id)
                    .correlate(Site).scalar_subquery())
    rows = db.session.execute(
        select(Site, device_count.label("devices"))
        .where(Site.tenant_id == g.tenant.id, Site.name > after)
        .order_by(Site.name).limit(PAGE_SIZE + 1)).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render_template("sites/index.html", rows=rows, next_after=rows[-1][0].name if more else None)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
