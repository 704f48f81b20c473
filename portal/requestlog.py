"""One log line per request, with a request id also sent as X-Request-ID."""
from __future__ import annotations

import logging
import re
import secrets
import time

from flask import Flask, g, request, session

log = logging.getLogger("portal.request")
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _loggable_path() -> str:
    """The path, with secrets masked: token links (/invitations/<token>, resets, email
    confirmations) would otherwise put working credentials in the logs."""
    rule = request.url_rule
    if rule is not None and "token" in rule.arguments:
        return rule.rule
    # Escaped: a line break in the path (%0A) would otherwise forge a log line of its own.
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode(), request.path)


def init_app(app: Flask) -> None:
    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)

    @app.before_request
    def _start():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _VALID_ID.match(incoming) else secrets.token_hex(8)
        g.started = time.perf_counter()

    @app.after_request
    def _log(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        # From the cookie, not current_user: logging must not query the database.
        user = session.get("_user_id", "-")
        # The slug from the URL, not g.tenant.slug: the commit expired g.tenant, and reading it
        # would reload it in a second transaction after the response was made.
        tenant = g.get("tenant_slug") or "-" if g.get("tenant") is not None else "-"
        log.info("%s %s %s status=%s user=%s tenant=%s duration_ms=%.1f", g.get("request_id", "-"),
                 request.method, _loggable_path(), response.status_code, user, tenant, elapsed)
        return response
