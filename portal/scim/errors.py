"""Errors as SCIM error responses (RFC 7644 §3.12): application/scim+json, the Error schema,
`status` as a string and a `scimType` where the RFC names one. Every error under /scim/ goes
through here (errors.machine_renderers), a 404 or a 500 too."""
from __future__ import annotations

from flask import Response, json
from pydantic import ValidationError
from scim2_models import Error, SCIMException
from werkzeug.exceptions import HTTPException

MEDIA_TYPE = "application/scim+json"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
_GENERIC = ("The requested URL", "The server", "You don't have", "The method is not", "The browser")


class ScimError(HTTPException):
    """Raised anywhere under /scim/v2 to answer with a SCIM error."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.code, self.detail, self.scim_type, self.extra_headers = status, detail, scim_type, headers

    def get_response(self, environ=None, scope=None):
        return error(self.code, self.detail, self.scim_type, self.extra_headers)

    @classmethod
    def of(cls, exc: SCIMException | ValidationError) -> ScimError:
        """From scim2-models' own verdicts: a SCIMException or a pydantic validation error."""
        if isinstance(exc, ValidationError):
            found = Error.from_validation_error(exc.errors()[0])
            return cls(int(found.status or 400), found.detail or "The request is not valid.", found.scim_type)
        return cls(exc.status, exc.detail, exc.scim_type or None)


def error(status: int, detail: str, scim_type: str | None = None, headers: dict | None = None) -> Response:
    body = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    response = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_http(exc: HTTPException) -> Response:
    if isinstance(exc, ScimError):
        return exc.get_response()
    detail = exc.description if exc.description and not exc.description.startswith(_GENERIC) else ""
    headers = {}
    if exc.code == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(exc.valid_methods)
    if exc.code == 404 and not detail:
        detail = "No such resource here."
    return error(exc.code or 500, detail or (exc.name if hasattr(exc, "name") else "Error"), headers=headers)
