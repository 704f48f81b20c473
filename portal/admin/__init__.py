"""System administration: /admin/... for system admins only (404 for everyone else)."""
from __future__ import annotations


from flask import Blueprint, Flask, abort, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..tenants.models import Tenant

bp = Blueprint("admin", __name__, url_prefix="/admin")
PAGE_SIZE = 50


@bp.before_request
def _system_admins_only():
    if not (current_user.is_authenticated and current_user.is_system_admin):
        abort(404)


@bp.get("/tenants")
def tenants():
    """Read-only list of all tenants (a global table), keyset-paginated by slug."""
    after = request.args.get("after", "")
    rows = db.session.scalars(select(Tenant).where(Tenant.slug > after).order_by(Tenant.slug)
                              .limit(PAGE_SIZE + 1)).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render_template("admin/tenants.html", tenants=rows, next_after=rows[-1].slug if more else None)


@bp.get("/security-events")
def security_events():
    """Every account event (seed 004's security log), filtered, newest first."""
    from ..security.events import KINDS, describe
    from .security_events import SEVERITIES, Filter, page
    state = Filter.from_args(request.args)
    rows, next_after = page(state)
    next_url = url_for(".security_events", **{**state.args(after=None), "after": next_after}) if next_after else None
    return render_template("admin/security_events.html", rows=rows, next_url=next_url, state=state,
                           kinds=KINDS, severities=SEVERITIES, describe=describe)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
