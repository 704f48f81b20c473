"""Devices of a tenant: /t/<slug>/devices (one URL, page or htmx fragment)."""
from __future__ import annotations

from flask import Flask, g, render_template, request

from ..extensions import htmx
from ..tenancy import requires, tenant_blueprint
from ..tenancy.permissions import Permission
from .queries import device_page

bp = tenant_blueprint("devices", __name__, "/devices")


@bp.get("/")
@requires(Permission.DEVICES_VIEW)
def index():
    page = device_page(g.tenant.id, request.args.get("after", ""))
    template = "devices/_device_rows.html" if htmx else "devices/index.html"
    return render_template(template, page=page)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
