"""The OpenAPI 3.1 document of the machines' whole surface, generated from the code: /api/v1
(the routes and their scopes from the URL map and the `auth.scope` decorators), the agents'
/api/v1/agent (agents/apidoc.py) and /oauth/*; the bodies and query parameters from the
marshmallow schemas (apispec), the responses each view can give from the tables below."""
from __future__ import annotations

import copy

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app

from ..agents import apidoc as agent_doc
from ..events import CATALOGUE as EVENTS
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


def _json(schema: str, headers: dict | None = None, description: str = "OK") -> dict:
    out = {"description": description,
           "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}
    if headers:
        out["headers"] = headers
    return out


def _body(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


QUERY_NOTE = (" A query parameter that is not one of these, is given twice or is not valid (a cursor "
              "included) is a 422 whose `errors` name it; a NUL character anywhere is a 400.")
DEVICE_FILTERS = [{"in": "query", "schema": schemas.DeviceListArgs}]
SITE_FILTERS = [{"in": "query", "schema": schemas.SiteListArgs}]
MEMBER_FILTERS = [{"in": "query", "schema": schemas.MemberListArgs}]

# endpoint -> (summary, parameters, request body schema, {status: response})
OPERATIONS = {
    "api.list_sites": ("List sites", SITE_FILTERS, None, {"200": _json("SitePage"), "400": PROBLEM,
                                                              "422": PROBLEM}),
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
                         {"200": _json("DevicePage"), "400": PROBLEM, "422": PROBLEM}),
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
    # Served by portal/members/api.py (the members area imports portal.api, so its views live there).
    "members_api.list_roles": ("List the organization's roles (built-in first, then its own)", [], None,
                               {"200": _json("RoleList")}),
    "members_api.list_members": ("List members by email (cursor pages)", MEMBER_FILTERS, None,
                                 {"200": _json("MemberPage"), "400": PROBLEM, "422": PROBLEM}),
    "members_api.get_member": ("Read a member: their roles, permissions and sites", [], None,
                               {"200": _json("MemberOut", ETAG), "404": PROBLEM}),
    "members_api.update_member": ("Set a member's roles (a base role and further custom roles)", [IF_MATCH],
                                  "MemberPatch",
                                  {"200": _json("MemberOut", ETAG), "400": PROBLEM, "404": PROBLEM, "409": PROBLEM,
                                   "412": PROBLEM, "415": PROBLEM, "422": PROBLEM, "428": PROBLEM}),
}
COMPONENTS = {"SiteIn": schemas.SiteIn, "SitePatch": schemas.SitePatch, "SiteOut": schemas.SiteOut,
              "SitePage": schemas.SitePage, "DeviceIn": schemas.DeviceIn, "DevicePatch": schemas.DevicePatch,
              "DeviceOut": schemas.DeviceOut, "DevicePage": schemas.DevicePage, "BulkStatusIn": schemas.BulkStatusIn,
              "BulkStatusOut": schemas.BulkStatusOut,
              "RoleOut": schemas.RoleOut, "RoleList": schemas.RoleList, "RoleRef": schemas.RoleRef,
              "MemberOut": schemas.MemberOut, "MemberPage": schemas.MemberPage, "MemberPatch": schemas.MemberPatch,
              "EventIn": schemas.EventIn, "EventsIn": schemas.EventsIn, "EventsOut": schemas.EventsOut, "Problem": schemas.ProblemOut,
              "TokenIn": schemas.TokenIn, "TokenOut": schemas.TokenOut, "TokenRef": schemas.TokenRef,
              "Introspection": schemas.Introspection, "OAuthError": schemas.OAuthError, **agent_doc.COMPONENTS}

# Operations of areas above this one (integrations), registered at start-up:
# area -> ({endpoint: (summary, parameters, request body schema, responses)}, {component: schema}).
EXTENSIONS: dict[str, tuple[dict, dict]] = {}


def _operations() -> dict:
    merged = dict(OPERATIONS)
    for operations, _ in EXTENSIONS.values():
        merged.update(operations)
    return merged


def event_schemas() -> dict[str, dict]:
    """One schema per event type of the catalogue: the body a webhook endpoint receives."""
    out = {}
    for name, kind in EVENTS.items():
        out["Event_" + name.replace(".", "_")] = {
            "type": "object", "description": kind.description, "required": ["type", "timestamp", "data"],
            "additionalProperties": False,
            "properties": {"type": {"const": name}, "timestamp": {"type": "string", "format": "date-time"},
                           "data": kind.schema()}}
    return out


def _webhooks() -> dict:
    """OpenAPI 3.1 `webhooks`: what an outbound webhook endpoint receives, one entry per event type,
    signed with the Standard Webhooks headers."""
    signed = [{"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": text}
              for name, text in (("webhook-id", "The message id: the same for every retry and replay"),
                                 ("webhook-timestamp", "Seconds since 1970 when this attempt was signed"),
                                 ("webhook-signature", "`v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the "
                                                       "endpoint's whsec_ secret"))]
    return {name: {"post": {"operationId": "webhook_" + name.replace(".", "_"), "summary": kind.description,
                            "parameters": signed,
                            "requestBody": _body("Event_" + name.replace(".", "_")),
                            "responses": {"2XX": {"description": "Received (anything else is retried)"}}}}
            for name, kind in EVENTS.items()}


# /oauth/*: a client authenticates by HTTP Basic, or by client_id and client_secret in the form.
CLIENT_AUTH = [{"clientBasic": []}, {}]
OAUTH_ERROR = {"description": "An OAuth 2.0 error (RFC 6749 5.2)",
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}}
# 400 is also the app's refusal of a NUL character (web.refuse_nul_characters), as problem details.
OAUTH_BAD_REQUEST = {"description": "An OAuth 2.0 error, or problem details for a NUL character",
                     "content": {**OAUTH_ERROR["content"], **PROBLEM["content"]}}


def _form(schema: str) -> dict:
    return {"required": True, "content": {"application/x-www-form-urlencoded": {
        "schema": {"$ref": f"#/components/schemas/{schema}"}}}}


OAUTH_OPERATIONS = {
    "oauth.token": {
        "operationId": "token", "summary": "Issue an access token (client credentials grant)",
        "description": "Scopes asked for must all be held by the client (`invalid_scope` otherwise); none asked "
                       "for: all of them. Apps also use this endpoint for the authorization code grant (with the "
                       "PKCE `code_verifier`) and for `refresh_token` (rotating); see "
                       "/.well-known/oauth-authorization-server.",
        "requestBody": _form("TokenIn"),
        "responses": {"200": _json("TokenOut", description="The token"), "400": OAUTH_BAD_REQUEST, "401": OAUTH_ERROR,
                      "429": PROBLEM}},
    "oauth.revoke": {
        "operationId": "revoke", "summary": "Revoke one of the client's tokens (RFC 7009)",
        "description": "A token that is not the client's own is answered like an unknown one: 200, nothing done.",
        "requestBody": _form("TokenRef"),
        "responses": {"200": {"description": "Revoked, or not the client's"}, "400": OAUTH_BAD_REQUEST,
                      "401": OAUTH_ERROR, "429": PROBLEM}},
    "oauth.introspect": {
        "operationId": "introspect", "summary": "Introspect one of the client's tokens (RFC 7662)",
        "requestBody": _form("TokenRef"),
        "responses": {"200": _json("Introspection"), "400": OAUTH_BAD_REQUEST, "401": OAUTH_ERROR, "429": PROBLEM}},
}


def _path(rule) -> str:
    out = rule.rule
    for argument in rule.arguments:
        out = out.replace(f"<uuid:{argument}>", "{" + argument + "}").replace(f"<{argument}>", "{" + argument + "}")
    return out


def _path_parameters(rule) -> list[dict]:
    return [{"name": a, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
            for a in sorted(rule.arguments)]


def document() -> dict:
    spec = APISpec(title="Portal API", version="1", openapi_version="3.1.0", plugins=[MarshmallowPlugin()],
                   info={"description": "Sites, devices, members and roles of one organization, for OAuth 2.0 clients "
                                        "(client credentials at /oauth/token); the devices' agents' own API "
                                        "under /api/v1/agent. See the README."})
    scopes = {p.value: p.description for p in _permissions()}
    spec.components.security_scheme("oauth2", {
        "type": "oauth2", "flows": {
            "clientCredentials": {"tokenUrl": "/oauth/token", "scopes": scopes},
            # Apps acting for a person (docs/api.md "OAuth authorization code"): PKCE S256 required.
            "authorizationCode": {"authorizationUrl": "/oauth/authorize", "tokenUrl": "/oauth/token",
                                  "refreshUrl": "/oauth/token", "scopes": scopes}}})
    spec.components.security_scheme("clientBasic", {
        "type": "http", "scheme": "basic", "description": "The API client's id and secret"})
    spec.components.security_scheme("agentSecret", agent_doc.SCHEME)
    components = dict(COMPONENTS)
    for _, extra in EXTENSIONS.values():
        components.update(extra)
    for name, schema in components.items():
        spec.components.schema(name, schema=schema)
    for name, schema in event_schemas().items():
        spec.components.schema(name, schema)
    operations = _operations()
    for rule in sorted(current_app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint in agent_doc.OPERATIONS:
            operation = {**agent_doc.OPERATIONS[rule.endpoint], "security": agent_doc.SECURITY}
            operation["parameters"] = _path_parameters(rule) + operation.get("parameters", [])
        elif rule.endpoint in OAUTH_OPERATIONS:
            operation = {**OAUTH_OPERATIONS[rule.endpoint], "security": CLIENT_AUTH}
        elif rule.endpoint in operations:
            operation = _api_operation(rule, operations)
        else:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            # apispec resolves schemas in place (it pops a parameter's schema): give it a copy.
            spec.path(path=_path(rule), operations={method.lower(): copy.deepcopy(operation)})
    document = spec.to_dict()
    document["webhooks"] = _webhooks()
    return document


def _api_operation(rule, operations) -> dict:
    summary, parameters, request_body, responses = operations[rule.endpoint]
    view = current_app.view_functions[rule.endpoint]
    path_parameters = _path_parameters(rule)
    operation = {"operationId": rule.endpoint.split(".", 1)[1], "summary": summary,
                 "security": [{"oauth2": [view.scope.value]}],
                 "description": f"Needs the scope `{view.scope.value}`." + (QUERY_NOTE if parameters else ""),
                 "parameters": path_parameters + list(parameters),
                 "responses": {**responses, **{code: PROBLEM for code in COMMON}}}
    if request_body:
        operation["requestBody"] = _body(request_body)
    return operation


def _permissions():
    from ..tenancy import Permission
    return list(Permission)
