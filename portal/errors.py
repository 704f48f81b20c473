"""Error pages in the portal's layout; htmx requests get a small fragment."""
from __future__ import annotations

import psycopg
import psycopg_pool
import sqlalchemy.exc
from flask import Flask, current_app, g, render_template, request
from werkzeug.exceptions import Forbidden, HTTPException, InternalServerError

from .database import conflicts
from .extensions import db, htmx, login_manager

# The database did not answer (down, restarting, unreachable, pool exhausted): a 503, not a 500.
UNAVAILABLE = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.TimeoutError,
               psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout)

TITLES = {
    400: "Bad request", 403: "Not allowed", 404: "Not found", 405: "Method not allowed", 410: "Gone",
    413: "Too large", 423: "Unavailable",
    429: "Too many requests", 500: "Something went wrong", 503: "Service unavailable",
}


# Path prefix -> renderer of an HTTPException for machines (the JSON API's problem details),
# registered by the area that serves that prefix.
machine_renderers: dict[str, object] = {}


def _machine_renderer():
    path = request.path
    return next((r for prefix, r in machine_renderers.items() if path.startswith(prefix)), None)


def render_error(code: int, message: str):
    template = "errors/_error.html" if htmx else "errors/error.html"
    try:
        return render_template(template, code=code, title=TITLES.get(code, "Error"), message=message), code
    except Exception as exc:
        if code == 503 or not database_unavailable(exc):
            raise
        return unavailable(exc)  # the page's header needed the database (the signed-in user), which is down


def safe_rollback() -> None:
    """Roll back, even when the connection is already gone."""
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 (the connection died; the pool discards it)
        db.session.close()


def database_unavailable(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, UNAVAILABLE):
            return True
        exc = getattr(exc, "original_exception", None) or exc.__cause__ or exc.__context__
    return False


def unavailable(exc: BaseException):
    safe_rollback()
    # Render without the database: no user or tenant in the header, nothing lazily loaded.
    g.tenant = None
    g._login_user = login_manager.anonymous_user()
    machine = _machine_renderer()
    if machine is not None:
        from werkzeug.exceptions import ServiceUnavailable
        response = machine(ServiceUnavailable("The database is not answering. Please try again in a moment."))
        response.headers["Retry-After"] = "5"
        return response
    body, code = render_error(503, "The database is not answering. Please try again in a moment.")
    return body, code, {"Retry-After": "5"}


def try_again(message: str):
    """503 with Retry-After for a write that lost to another one (or ran out of time): the
    database is up, and the same request is expected to succeed in a moment."""
    safe_rollback()
    machine = _machine_renderer()
    if machine is not None:
        from werkzeug.exceptions import ServiceUnavailable
        response = machine(ServiceUnavailable(message))
        response.headers["Retry-After"] = "1"
        return response
    body, code = render_error(503, message)
    return body, code, {"Retry-After": "1"}


def refused(exc: BaseException):
    """403 for a write the database refused because the role does not allow it: a view that
    forgot its permission check meets the policy (migration 0027), never a 500."""
    safe_rollback()
    current_app.logger.warning("the database refused a write: %s", getattr(exc, "original_exception", None) or exc)
    machine = _machine_renderer()
    if machine is not None:
        return machine(Forbidden(conflicts.REFUSED_MESSAGE))
    return render_error(403, conflicts.REFUSED_MESSAGE)


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if exc.code in (301, 302, 303, 307, 308) or exc.code is None:
            return exc
        safe_rollback()
        machine = _machine_renderer()
        if machine is not None:
            return machine(exc)
        message = exc.description if exc.description and not exc.description.startswith(
            ("The requested URL", "The server", "You don't have", "The method is not")) else ""
        response = render_error(exc.code, message)
        if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            return response[0], 405, {"Allow": ", ".join(exc.valid_methods)}
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if conflicts.refused(exc):
            return refused(exc)
        conflict = conflicts.kind(exc)
        if conflict == "retry" and conflicts.may_repeat():
            raise conflicts.RetryRequest() from exc  # the request edge runs it once more (Portal)
        if conflict:
            app.logger.warning("gave up after a %s: %s", "conflict" if conflict == "retry" else "statement timeout",
                               getattr(exc, "original_exception", None) or exc)
            return try_again(conflicts.TRY_AGAIN if conflict == "retry" else conflicts.TOO_SLOW_MESSAGE)
        if database_unavailable(exc):
            app.logger.warning("database unavailable: %s", getattr(exc, "original_exception", None) or exc)
            return unavailable(exc)
        safe_rollback()
        app.logger.exception("Unhandled error: %s", exc)
        machine = _machine_renderer()
        if machine is not None:
            return machine(InternalServerError())
        return render_error(500, "")

    app.register_error_handler(InternalServerError, lambda e: _unexpected(e))
