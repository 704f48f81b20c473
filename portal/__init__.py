"""Multi-tenant platform portal: the app factory."""
from __future__ import annotations

from flask import Flask
from flask_sqlalchemy.session import Session as FlaskSession

from . import config as config_module
from .config import ROOT, ConfigError
from .database import context, embedded, guard, liveness, replica
from .extensions import csrf, db, htmx, limiter, login_manager, migrate
from .routing import UrlMap


class Portal(Flask):
    url_map_class = UrlMap  # URLs built once (portal.routing)

    def full_dispatch_request(self):
        """The request, and once more when PostgreSQL gave up on it because of another
        transaction (a deadlock, a serialization failure, a lock timeout): see
        database.conflicts for the lock order and why repeating a request is safe."""
        from flask import g, request, session

        from .database import conflicts
        from .errors import safe_rollback
        # What a run changes outside the database: g, the cookie session, and the URL's values
        # (url_value_preprocessors pop the tenant slug).
        saved_g, saved_session, saved_args = dict(g.__dict__), dict(session), dict(request.view_args or {})
        try:
            return super().full_dispatch_request()
        except Exception as exc:  # noqa: BLE001 (anything else is re-raised at once)
            if conflicts.kind(exc) != "retry" or not conflicts.may_repeat():
                raise
            self.logger.warning("request repeated after: %s", (exc.__cause__ or exc).__class__.__name__)
        from . import metrics
        metrics.REQUEST_RETRIES.inc()
        safe_rollback()
        g.__dict__.clear()
        g.__dict__.update(saved_g)
        g.repeated = True
        session.clear()
        session.update(saved_session)
        request.view_args = saved_args
        for upload in request.files.values():
            upload.stream.seek(0)
        return super().full_dispatch_request()


def create_app(overrides: dict | None = None) -> Flask:
    cfg = config_module.load(overrides)
    if not cfg["DATABASE_URL"]:
        embedded.configure(cfg)
    cfg.setdefault("SQLALCHEMY_DATABASE_URI", cfg["DATABASE_URL"])
    cfg["DB_APP_ROLE"] = cfg.get("DB_APP_ROLE") or config_module.role_of(cfg["DATABASE_URL"])
    # No pre-ping round trip per checkout: database.liveness finds dropped connections instead.
    cfg.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": False, "pool_size": cfg["DB_POOL_SIZE"]})
    if not cfg["DB_PREPARED_STATEMENTS"]:
        cfg["SQLALCHEMY_ENGINE_OPTIONS"].setdefault("connect_args", {})["prepare_threshold"] = None

    app = Portal(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"),
                instance_path=cfg["INSTANCE_DIR"])
    app.config.update(cfg)
    app.debug = False  # never the interactive debugger, in any environment

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), compare_type=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    _rate_limits_only_where_they_apply(app)
    context.install(FlaskSession)

    from .database import registry  # noqa: F401
    from . import (admin, agents, analytics, api, api_clients, auditlog, connected_apps, dashboard, devices, errors,
                   health, integrations, invitations, jobs, keys, mail, members, metrics, notifications, organization,
                   passkeys, profile, requestlog, roles, scim, search, security, signin, sites, sso, tasks, tenancy, web)
    for area in (requestlog, metrics, errors, web, security, signin, profile, passkeys, sso, tenancy, dashboard,
                 analytics, sites, devices, agents, tasks, members, roles, invitations, organization, auditlog, search,
                 api, api_clients, connected_apps, integrations, scim, mail, jobs, keys, notifications, admin, health):
        area.init_app(app)

    from . import cli
    cli.init_app(app)
    if cfg["TRUSTED_PROXIES"]:
        # The client address (rate limits, IP allow lists, audit rows) from the trusted proxies'
        # X-Forwarded-For, never from a header a client could set itself.
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=cfg["TRUSTED_PROXIES"], x_proto=cfg["TRUSTED_PROXIES"])

    _hooks_in_one_pass(app)
    with app.app_context():
        liveness.install(db.engine)
    replica.install(app)
    if app.config.get("CHECK_RLS", True):
        _refuse_rls_bypass(app)
    return app


def _hooks_in_one_pass(app: Flask) -> None:
    """The app-wide before- and after-request hooks the areas and extensions registered (about
    six and eight), each run by Flask through `ensure_sync` (an inspection per hook per request):
    one hook each that calls them in Flask's order (before: as registered, stopping at the
    first response; after: in reverse). Hooks registered later are added after these, as before."""
    import inspect
    before = list(app.before_request_funcs.get(None, ()))
    after = list(app.after_request_funcs.get(None, ()))
    if any(inspect.iscoroutinefunction(f) for f in before + after):
        return  # an async hook needs Flask's own runner

    def before_request():
        for hook in before:
            response = hook()
            if response is not None:
                return response
        return None

    def after_request(response):
        for hook in reversed(after):
            response = hook(response)
        return response
    if len(before) > 1:
        app.before_request_funcs[None] = [before_request]
    if len(after) > 1:
        app.after_request_funcs[None] = [after_request]


def _rate_limits_only_where_they_apply(app: Flask) -> None:
    """Flask-Limiter looks up the limits of every request; only views decorated with
    `limiter.limit` have any here (no default, application or blueprint limits), so the check
    runs for those views only, and for every request again if such limits are ever configured."""
    from flask import request
    from flask_limiter.util import get_qualified_name
    check = limiter._check_request_limit
    hooks = app.before_request_funcs.setdefault(None, [])
    if check not in hooks:
        return

    def rate_limits():
        manager = limiter.limit_manager
        if manager._application_limits or manager._default_limits or manager._blueprint_limits:
            return check()
        view = app.view_functions.get(request.endpoint or "")
        if view is not None and get_qualified_name(view) in limiter._marked_for_limiting:
            return check()
        return None
    hooks[hooks.index(check)] = rate_limits


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
