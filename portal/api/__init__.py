"""The portal for machines: OAuth 2.0 clients of a tenant (client credentials), their tokens,
and the JSON API under /api/v1, through the same services, rules and audit as the pages.
API client management pages are in portal/api_clients."""
from __future__ import annotations

from flask import Flask

from ..errors import machine_renderers
from ..extensions import csrf
from . import problems


def init_app(app: Flask) -> None:
    from . import cli, oauth, v1

    # Bearer tokens and client credentials, never cookies: a cross-site request cannot carry
    # them, so CSRF does not apply here (and every cookie route keeps its CSRF check).
    csrf.exempt(v1.bp)
    csrf.exempt(oauth.bp)
    app.register_blueprint(v1.bp)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(oauth.meta)
    oauth.init_app(app)
    # Machines' endpoints only: /oauth/authorize is a page for people (portal/connected_apps).
    for prefix in ("/api/", "/oauth/token", "/oauth/revoke", "/oauth/introspect"):
        machine_renderers[prefix] = problems.from_http
    cli.init_app(app)
