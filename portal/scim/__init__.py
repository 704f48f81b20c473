"""SCIM 2.0 provisioning (RFC 7643, RFC 7644): an organization's identity provider creates,
changes, suspends and removes its people and groups at /scim/v2, with a SCIM token an owner
makes at /t/<slug>/settings/provisioning (or `flask scim-tokens create`)."""
from __future__ import annotations

from flask import Flask

from ..errors import machine_renderers
from ..extensions import csrf
from . import errors


def init_app(app: Flask) -> None:
    from . import api, cli, views

    # Bearer tokens only, never cookies: a cross-site request cannot carry them, so CSRF does
    # not apply (and every cookie route keeps its check).
    csrf.exempt(api.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(views.bp)
    machine_renderers["/scim/"] = errors.from_http
    cli.init_app(app)
