"""Errors as RFC 9457 problem details (application/problem+json), with field errors."""
from __future__ import annotations

from flask import Response, json, request
from werkzeug.exceptions import HTTPException

from ..errors import TITLES

MEDIA_TYPE = "application/problem+json"
TITLES = {**TITLES, 401: "Unauthorized", 409: "Conflict", 412: "Precondition failed", 415: "Unsupported media type",
          422: "Unprocessable content", 428: "Precondition required"}


class Problem(HTTPException):
    """Raised anywhere under /api/v1 to answer with a problem document."""

    def __init__(self, status: int, detail: str = "", *, errors: list[dict] | None = None,
                 headers: dict | None = None, type_: str = "about:blank"):
        super().__init__(detail)
        self.code, self.detail, self.errors, self.extra_headers, self.type_ = status, detail, errors, headers, type_

    def get_response(self, environ=None, scope=None):
        return problem(self.code, self.detail, errors=self.errors, headers=self.extra_headers, type_=self.type_)


def problem(status: int, detail: str = "", *, errors: list[dict] | None = None, headers: dict | None = None,
            type_: str = "about:blank") -> Response:
    body = {"type": type_, "title": TITLES.get(status, "Error"), "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors  # [{"field": "name", "detail": "..."}]
    body["instance"] = request.path
    response = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_http(exc: HTTPException) -> Response:
    if isinstance(exc, Problem):
        return exc.get_response()
    detail = exc.description if exc.description and not exc.description.startswith(
        ("The requested URL", "The server", "You don't have", "The method is not", "The browser")) else ""
    headers = {}
    if exc.code == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(exc.valid_methods)
    return problem(exc.code or 500, detail, headers=headers)


def field_error(field: str | None, detail: str) -> list[dict]:
    return [{"field": field or "", "detail": detail}]
