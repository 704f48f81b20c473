"""The request edge: one transaction per request, security headers, template helpers."""
from __future__ import annotations

from flask import Flask, abort, current_app, g, request

from .errors import safe_rollback
from .extensions import db
from .mail import deliver_after_response


def commit_or_rollback(response):
    """Commit once, at the edge, when the request succeeded; anything else rolls back."""
    if response.status_code < 400:
        session = db.session()
        # A request that never used the database (no transaction, nothing added) has nothing to end.
        if session.in_transaction() or session.new or session.dirty or session.deleted:
            session.commit()
        response = deliver_after_response(current_app._get_current_object(), response)
    else:
        safe_rollback()  # also when the error was the database going away
    return response


def security_headers(response):
    h = response.headers
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("Content-Security-Policy",
                 "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                 "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
    if g.get("production"):
        # Browsers ignore HSTS over plain HTTP, so it is safe to send behind a TLS proxy too.
        h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    # Pages and errors render as fragments for htmx: caches must key on it.
    response.vary.add("HX-Request")
    return response


def refuse_nul_characters():
    """PostgreSQL text cannot hold NUL: refuse it once, here, rather than as a 500 in some query."""
    values = [request.path]
    for multi in (request.args, request.form):
        for _, items in multi.lists():
            values += items
    if any("\x00" in value for value in values):
        abort(400, "The request contains a NUL character, which no field accepts.")


def init_app(app: Flask) -> None:
    from . import ui
    ui.init_app(app)
    app.before_request(refuse_nul_characters)
    app.after_request(commit_or_rollback)
    app.after_request(security_headers)

    @app.before_request
    def _env():
        g.production = app.config["PORTAL_ENV"] == "production"
