"""Single sign-on with OpenID Connect (Keycloak or any conforming provider).

Off unless OIDC_ISSUER is set: then /login/sso and its callback exist (404 otherwise) and
the login page offers the button.
"""
from __future__ import annotations

from flask import Flask

from ..config import ConfigError


def init_app(app: Flask) -> None:
    if not app.config.get("OIDC_ISSUER"):
        return
    if not app.config.get("OIDC_CLIENT_ID"):
        raise ConfigError("OIDC_ISSUER is set but OIDC_CLIENT_ID is not: register the portal as a client "
                          "with the provider (see README, Single sign-on).")
    from . import client
    from .views import bp
    client.register(app)
    app.register_blueprint(bp)
    app.context_processor(lambda: {"sso_enabled": True})
