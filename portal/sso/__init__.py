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
    _demo_command(app)
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


def _demo_command(app: Flask) -> None:
    import click
    from flask.cli import AppGroup

    sso_cli = AppGroup("sso", help="Organizations' single sign-on.")

    @sso_cli.command("recheck-domains")
    def recheck_domains() -> None:
        """Check every claimed domain's DNS record now (what the daily job does)."""
        from .tasks import recheck_all
        click.echo(f"{recheck_all()} domain(s) changed state.")

    app.cli.add_command(sso_cli)

    @app.cli.command("sso-demo-provider")
    @click.option("--port", default=8765, show_default=True)
    def sso_demo_provider(port: int) -> None:
        """Run the demo OpenID provider of the sample data (development only) until Ctrl-C."""
        import time

        from flask import current_app

        from .sample import demo_provider
        if current_app.config["PORTAL_ENV"] == "production":
            raise click.ClickException("The demo provider is for development only.")
        with demo_provider(port):
            click.echo(f"Demo provider on http://127.0.0.1:{port} (Ctrl-C stops it)")
            while True:
                time.sleep(3600)
