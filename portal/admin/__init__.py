"""System administration: /admin/... for system admins only (404 for everyone else)."""
from __future__ import annotations


from flask import Blueprint, Flask, abort, render_template, request
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


def init_app(app: Flask) -> None:
    from . import jobs  # noqa: F401 (its routes join this blueprint)
    app.register_blueprint(bp)
