"""The tenant switcher in the header: loaded and used with htmx, plain links without it."""
from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..extensions import htmx
from .queries import my_tenants

bp = Blueprint("switcher", __name__)


@bp.get("/tenants")
@login_required
def index():
    """The user's organizations: the header fragment for htmx, a page otherwise."""
    rows = my_tenants(current_user.id)
    current = request.args.get("current", "")
    if htmx:
        return render_template("tenancy/_switcher.html", rows=rows, current=current)
    return render_template("tenancy/tenants.html", rows=rows, current=current)


@bp.post("/tenants/switch")
@login_required
def switch():
    slug = request.form.get("slug", "")
    match = next((t for t, _ in my_tenants(current_user.id) if t.slug == slug), None)
    if match is None:
        abort(404)
    current_user.last_tenant_id = match.id
    target = url_for("dashboard.index", tenant_slug=match.slug)
    if htmx:
        return "", 200, {"HX-Redirect": target}
    return redirect(target, 303)
