"""Single sign-on with OpenID Connect (Keycloak or any conforming provider).

The installation's provider: off unless OIDC_ISSUER is set; then /login/sso and its callback
exist (404 otherwise) and the login page offers the button.

Organizations' own providers (issue 25), always on: /t/<slug>/settings/sso (connections, verified
domains, group mappings; settings_views), home-realm discovery and the round trip at /login
(org_views), required single sign-on (policy), groups that become roles (groups).
"""
from __future__ import annotations

from flask import Flask

from ..config import ConfigError


def init_app(app: Flask) -> None:
    from .org_views import bp as org_bp
    from .settings_views import bp as settings_bp
    app.register_blueprint(org_bp)
    app.register_blueprint(settings_bp)
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
