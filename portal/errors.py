"""Error pages in the portal's layout; htmx requests get a small fragment."""
from __future__ import annotations

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException, InternalServerError

from .extensions import db, htmx

TITLES = {
    400: "Bad request", 403: "Not allowed", 404: "Not found", 405: "Method not allowed", 410: "Gone",
    413: "Too large", 423: "Unavailable",
    429: "Too many requests", 500: "Something went wrong", 503: "Service unavailable",
}


def render_error(code: int, message: str):
    template = "errors/_error.html" if htmx else "errors/error.html"
    return render_template(template, code=code, title=TITLES.get(code, "Error"), message=message), code


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if exc.code in (301, 302, 303, 307, 308) or exc.code is None:
            return exc
        db.session.rollback()
        message = exc.description if exc.description and not exc.description.startswith(
            ("The requested URL", "The server", "You don't have", "The method is not")) else ""
        response = render_error(exc.code, message)
        if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            return response[0], 405, {"Allow": ", ".join(exc.valid_methods)}
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        db.session.rollback()
        app.logger.exception("Unhandled error: %s", exc)
        return render_error(500, "")

    app.register_error_handler(InternalServerError, lambda e: _unexpected(e))
