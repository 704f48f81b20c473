"""The OpenAPI 3.1 document of /api/v1, generated from the code: the routes and their scopes
from the URL map and the `auth.scope` decorators, the bodies from the marshmallow schemas
(apispec), the responses each view can give from the table below."""
from __future__ import annotations

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app

from ..devices.models import DeviceStatus, DeviceType
from ..devices.queries import SORTS
from . import schemas

PROBLEM = {"description": "Problem details (RFC 9457)",
           "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
COMMON = ("401", "403", "429")
ETAG = {"ETag": {"schema": {"type": "string"}, "description": "The version, for If-Match"}}
IF_MATCH = {"name": "If-Match", "in": "header", "required": True, "schema": {"type": "string"},
            "description": "The ETag of the version being changed (412 when stale)"}
IF_MATCH_OPTIONAL = {**IF_MATCH, "required": False}
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
               "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
               "description": "A retried create with the same key returns the first result"}
CURSOR = {"name": "cursor", "in": "query", "schema": {"type": "string", "maxLength": 500},
          "description": "From the previous page's `next` link"}


def _json(schema: str, headers: dict | None = None, description: str = "OK") -> dict:
    out = {"description": description,
           "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}
    if headers:
        out["headers"] = headers
    return out


def _body(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


DEVICE_FILTERS = [
    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 100},
     "description": "Prefix of the name or serial number"},
    {"name": "site", "in": "query", "schema": {"type": "string", "format": "uuid"}},
    {"name": "type", "in": "query", "schema": {"type": "string", "enum": [t.value for t in DeviceType]}},
    {"name": "status", "in": "query", "schema": {"type": "string", "enum": [s.value for s in DeviceStatus]}},
    {"name": "sort", "in": "query", "schema": {"type": "string", "enum": list(SORTS)}},
    {"name": "dir", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    CURSOR,
]
SITE_FILTERS = [{"name": "archived", "in": "query", "schema": {"type": "boolean"}}, CURSOR]

# endpoint -> (summary, parameters, request body schema, {status: response})
OPERATIONS = {
    "api.list_sites": ("List sites", SITE_FILTERS, None, {"200": _json("SitePage"), "400": PROBLEM}),
    "api.create_site": ("Create a site", [IDEMPOTENCY], "SiteIn",
                        {"201": _json("SiteOut", ETAG, "Created"), "400": PROBLEM, "409": PROBLEM, "415": PROBLEM,
                         "422": PROBLEM}),
    "api.get_site": ("Read a site", [], None, {"200": _json("SiteOut", ETAG), "404": PROBLEM}),
    "api.update_site": ("Change a site (only the fields given)", [IF_MATCH], "SitePatch",
                        {"200": _json("SiteOut", ETAG), "400": PROBLEM, "404": PROBLEM, "409": PROBLEM,
                         "412": PROBLEM, "415": PROBLEM, "422": PROBLEM, "428": PROBLEM}),
    "api.delete_site": ("Delete an empty site", [IF_MATCH], None,
                        {"204": {"description": "Deleted"}, "404": PROBLEM, "409": PROBLEM, "412": PROBLEM,
                         "428": PROBLEM}),
    "api.archive_site": ("Archive a site", [IF_MATCH_OPTIONAL], None,
                         {"200": _json("SiteOut", ETAG), "404": PROBLEM, "409": PROBLEM, "412": PROBLEM}),
    "api.restore_site": ("Restore an archived site", [IF_MATCH_OPTIONAL], None,
                         {"200": _json("SiteOut", ETAG), "404": PROBLEM, "409": PROBLEM, "412": PROBLEM,
                          "422": PROBLEM}),
    "api.list_devices": ("List devices (filters, prefix search, sorts, cursor pages)", DEVICE_FILTERS, None,
                         {"200": _json("DevicePage"), "400": PROBLEM}),
    "api.create_device": ("Create a device", [IDEMPOTENCY], "DeviceIn",
                          {"201": _json("DeviceOut", ETAG, "Created"), "400": PROBLEM, "409": PROBLEM,
                           "415": PROBLEM, "422": PROBLEM}),
    "api.get_device": ("Read a device", [], None, {"200": _json("DeviceOut", ETAG), "404": PROBLEM}),
    "api.update_device": ("Change a device (only the fields given)", [IF_MATCH], "DevicePatch",
                          {"200": _json("DeviceOut", ETAG), "400": PROBLEM, "404": PROBLEM, "409": PROBLEM,
                           "412": PROBLEM, "415": PROBLEM, "422": PROBLEM, "428": PROBLEM}),
    "api.decommission_device": ("Decommission a device", [IF_MATCH_OPTIONAL], None,
                                {"200": _json("DeviceOut", ETAG), "404": PROBLEM, "409": PROBLEM, "412": PROBLEM}),
    "api.bulk_status": ("Set the status of up to 500 devices (all or none)", [], "BulkStatusIn",
                        {"200": _json("BulkStatusOut"), "400": PROBLEM, "404": PROBLEM, "409": PROBLEM,
                         "415": PROBLEM, "422": PROBLEM}),
    "api.record_events": ("Record up to 1,000 custom analytics events (all or none)", [], "EventsIn",
                          {"201": _json("EventsOut", description="Recorded"), "400": PROBLEM, "415": PROBLEM,
                           "422": PROBLEM}),
}
COMPONENTS = {"SiteIn": schemas.SiteIn, "SitePatch": schemas.SitePatch, "SiteOut": schemas.SiteOut,
              "SitePage": schemas.SitePage, "DeviceIn": schemas.DeviceIn, "DevicePatch": schemas.DevicePatch,
              "DeviceOut": schemas.DeviceOut, "DevicePage": schemas.DevicePage, "BulkStatusIn": schemas.BulkStatusIn,
              "BulkStatusOut": schemas.BulkStatusOut,
              "EventIn": schemas.EventIn, "EventsIn": schemas.EventsIn, "EventsOut": schemas.EventsOut, "Problem": schemas.ProblemOut}


def _path(rule) -> str:
    out = rule.rule
    for argument in rule.arguments:
        out = out.replace(f"<uuid:{argument}>", "{" + argument + "}")
    return out


def document() -> dict:
    spec = APISpec(title="Portal API", version="1", openapi_version="3.1.0", plugins=[MarshmallowPlugin()],
                   info={"description": "Sites and devices of one organization, for OAuth 2.0 clients "
                                        "(client credentials at /oauth/token). See the README."})
    spec.components.security_scheme("oauth2", {
        "type": "oauth2", "flows": {"clientCredentials": {
            "tokenUrl": "/oauth/token",
            "scopes": {p.value: p.description for p in _permissions()}}}})
    for name, schema in COMPONENTS.items():
        spec.components.schema(name, schema=schema)
    for rule in sorted(current_app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint not in OPERATIONS:
            continue
        summary, parameters, request_body, responses = OPERATIONS[rule.endpoint]
        view = current_app.view_functions[rule.endpoint]
        path_parameters = [{"name": a, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
                           for a in sorted(rule.arguments)]
        operation = {"operationId": rule.endpoint.split(".", 1)[1], "summary": summary,
                     "security": [{"oauth2": [view.scope.value]}],
                     "description": f"Needs the scope `{view.scope.value}`.",
                     "parameters": path_parameters + list(parameters),
                     "responses": {**responses, **{code: PROBLEM for code in COMMON}}}
        if request_body:
            operation["requestBody"] = _body(request_body)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            spec.path(path=_path(rule), operations={method.lower(): operation})
    return spec.to_dict()


def _permissions():
    from ..tenancy import Permission
    return list(Permission)
