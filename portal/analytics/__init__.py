"""Analytics events (seed 002, issue 15): recorded by the areas (device status changes, a
member's first entry into a tenant in a session, agent task outcomes, custom events), stored in
a table partitioned by month, kept per plan, and charted as server-drawn SVG on the dashboard and
at /t/<slug>/analytics/."""
from __future__ import annotations

from flask import Flask, session

from ..tenancy import TenantContext, entry_checks

SEEN_KEY = "analytics_entered"
SEEN_MAX = 20


def record_signin(ctx: TenantContext):
    """An entry check: the first request of a session into a tenant records a sign-in to it."""
    seen = session.get(SEEN_KEY) or []
    key = str(ctx.tenant_id)
    if key in seen:
        return None
    from .events import member_signed_in
    member_signed_in(ctx)
    session[SEEN_KEY] = (seen + [key])[-SEEN_MAX:]
    return None


def init_app(app: Flask) -> None:
    from . import views
    app.register_blueprint(views.bp)
    if record_signin not in entry_checks:
        entry_checks.append(record_signin)
