"""Multi-tenant platform portal: the app factory."""
from __future__ import annotations

from flask import Flask
from flask_sqlalchemy.session import Session as FlaskSession

from . import config as config_module
from .config import ROOT, ConfigError
from .database import context, embedded, guard
from .extensions import csrf, db, htmx, limiter, login_manager, migrate


def create_app(overrides: dict | None = None) -> Flask:
    cfg = config_module.load(overrides)
    if not cfg["DATABASE_URL"]:
        embedded.configure(cfg)
    cfg.setdefault("SQLALCHEMY_DATABASE_URI", cfg["DATABASE_URL"])
    cfg["DB_APP_ROLE"] = cfg.get("DB_APP_ROLE") or config_module.role_of(cfg["DATABASE_URL"])
    cfg.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True, "pool_size": cfg["DB_POOL_SIZE"]})
    if not cfg["DB_PREPARED_STATEMENTS"]:
        cfg["SQLALCHEMY_ENGINE_OPTIONS"].setdefault("connect_args", {})["prepare_threshold"] = None

    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"),
                instance_path=cfg["INSTANCE_DIR"])
    app.config.update(cfg)
    app.debug = False  # never the interactive debugger, in any environment

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), compare_type=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    context.install(FlaskSession)

    from .database import registry  # noqa: F401
    from . import (admin, agents, analytics, api, api_clients, auditlog, dashboard, devices, errors, health,
                   invitations, jobs, mail, members, metrics, notifications, organization, profile, requestlog, roles,
                   security, signin, sites, sso, tasks, tenancy, web)
    for area in (requestlog, metrics, errors, web, security, signin, profile, sso, tenancy, dashboard, analytics, sites,
                 devices, agents, tasks, members, roles, invitations, organization, auditlog, api, api_clients, mail,
                 jobs, notifications, admin, health):
        area.init_app(app)

    from . import cli
    cli.init_app(app)
    if cfg["TRUSTED_PROXIES"]:
        # The client address (rate limits, IP allow lists, audit rows) from the trusted proxies'
        # X-Forwarded-For, never from a header a client could set itself.
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=cfg["TRUSTED_PROXIES"], x_proto=cfg["TRUSTED_PROXIES"])

    if app.config.get("CHECK_RLS", True):
        _refuse_rls_bypass(app)
    return app


def _refuse_rls_bypass(app: Flask) -> None:
    with app.app_context():
        reasons = guard.rls_bypass_reasons(db.engine)
    if reasons and not app.config["ALLOW_RLS_BYPASS"]:
        raise ConfigError(
            "Refusing to serve: the DATABASE_URL connection would bypass row-level security ("
            + "; ".join(reasons) + "). Connect as the serving role (see README), or set "
            "ALLOW_RLS_BYPASS=1 in development to accept the risk.")
    if reasons:
        app.logger.warning("Row-level security is bypassed (%s): ALLOW_RLS_BYPASS is set.", "; ".join(reasons))
