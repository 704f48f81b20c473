"""/api/v1/integrations: integrations for API clients (scopes integrations:view and
integrations:manage), through the same services, rules, limits and audit as the pages, with the
API's conventions (portal/api: problem details, cursor pages, ETags). A created webhook's or
inbound integration's signing secret is in the 201 answer, once. The operations are added to the
OpenAPI document through `portal.api.openapi.EXTENSIONS`."""
from __future__ import annotations

import base64
from datetime import datetime
from uuid import UUID

from flask import Blueprint, Flask, url_for
from marshmallow import RAISE, Schema, fields, validate

from ..api import auth
from ..api import openapi as api_doc
from ..api.conventions import body, check_if_match, document, query, refused
from ..api.problems import Problem, field_error
from ..extensions import csrf
from ..rules import RuleViolation
from ..tenancy import Permission, current
from . import providers, services
from .models import IntegrationStatus

bp = Blueprint("integrations_api", __name__, url_prefix="/api/v1/integrations")
NO_NUL = r"^[^\x00]*$"


@bp.before_request
def _enter():
    auth.enter()


class IntegrationIn(Schema):
    class Meta:
        unknown = RAISE

    provider = fields.String(required=True, validate=validate.OneOf(list(providers.PROVIDERS)))
    name = fields.String(required=True, validate=validate.Length(min=1, max=services.NAME_MAX),
                         metadata={"pattern": NO_NUL})
    description = fields.String(allow_none=True, validate=validate.Length(max=services.DESCRIPTION_MAX),
                                metadata={"pattern": NO_NUL})
    config = fields.Dict(keys=fields.String(), load_default=dict,
                         metadata={"description": "The provider's configuration fields (see the pages' forms): "
                                                  "webhook: url, events; json_source: url, event_type, records_key, "
                                                  "next_key, cursor_key, cursor_param, id_key, time_key, auth_header, "
                                                  "interval_minutes; inbound: none"})
    credentials = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict,
                              metadata={"description": "Write-only credentials (json_source: token); never returned"})


class IntegrationPatch(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(validate=validate.Length(min=1, max=services.NAME_MAX), metadata={"pattern": NO_NUL})
    description = fields.String(allow_none=True, validate=validate.Length(max=services.DESCRIPTION_MAX),
                                metadata={"pattern": NO_NUL})
    config = fields.Dict(keys=fields.String(), metadata={"description": "Members given replace the stored ones"})


class CredentialsIn(Schema):
    class Meta:
        unknown = RAISE

    credentials = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict,
                              metadata={"description": "json_source: token. Webhook and inbound: nothing (a new "
                                                       "signing secret is made)"})


class CredentialsOut(Schema):
    signing_secret = fields.String(allow_none=True, required=True,
                                   metadata={"description": "The new `whsec_…` secret, this once (webhook, inbound)"})


class IntegrationOut(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True, required=True)
    provider = fields.String(required=True, validate=validate.OneOf(list(providers.PROVIDERS)))
    config = fields.Dict(required=True)
    status = fields.String(required=True, validate=validate.OneOf([s.value for s in IntegrationStatus]))
    enabled = fields.Boolean(required=True)
    has_credentials = fields.Boolean(required=True)
    last_sync_at = fields.DateTime(allow_none=True, required=True)
    sync_status = fields.String(allow_none=True, required=True)
    sync_error = fields.String(allow_none=True, required=True)
    inbound_url = fields.String(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class IntegrationCreated(IntegrationOut):
    signing_secret = fields.String(allow_none=True, required=True,
                                   metadata={"description": "`whsec_…`, returned this once (webhook, inbound)"})


class IntegrationPage(Schema):
    items = fields.List(fields.Nested(IntegrationOut), required=True)


class LogEntryOut(Schema):
    id = fields.UUID(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["delivery", "test", "sync", "inbound"]))
    event_type = fields.String(allow_none=True, required=True)
    webhook_id = fields.String(allow_none=True, required=True)
    state = fields.String(required=True, validate=validate.OneOf(["pending", "retrying", "succeeded", "failed"]))
    attempts = fields.Integer(required=True)
    request = fields.Dict(required=True, metadata={"description": "Method, URL, headers and the body (truncated, "
                                                                  "credentials redacted)"})
    response = fields.Dict(required=True)
    error = fields.String(allow_none=True, required=True)
    duration_ms = fields.Integer(allow_none=True, required=True)
    replay_of = fields.UUID(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(allow_none=True, required=True)


class LogPage(Schema):
    items = fields.List(fields.Nested(LogEntryOut), required=True)
    next = fields.String(allow_none=True, required=True)


class LogArgs(Schema):
    class Meta:
        unknown = RAISE

    cursor = fields.String(validate=validate.Length(max=200), metadata={"pattern": "^[A-Za-z0-9_-]*$",
                                                                        "description": "The `next` link's; empty: the first page"})


class Queued(Schema):
    queued = fields.Boolean(required=True)
    entry_id = fields.UUID(allow_none=True)


def integration_document(i, secret: str | None = None, *, created: bool = False) -> dict:
    out = {"id": i.id, "name": i.name, "description": i.description, "provider": i.provider,
           "config": i.config or {}, "status": IntegrationStatus(i.status).value, "enabled": bool(i.enabled),
           "has_credentials": i.credentials is not None, "last_sync_at": i.last_sync_at,
           "sync_status": i.sync_status, "sync_error": i.sync_error,
           "inbound_url": url_for("inbound.receive", integration_id=i.id, _external=False)
           if i.provider == "inbound" else None,
           "created_at": i.created_at, "updated_at": i.updated_at}
    if created:
        return IntegrationCreated().dump({**out, "signing_secret": secret})
    return IntegrationOut().dump(out)


def _integration(integration_id: UUID, *, for_update: bool = False):
    found = services.get(current(), integration_id, for_update=for_update)
    if found is None:
        raise Problem(404, "No such integration.")
    return found


@bp.get("")
@auth.scope(Permission.INTEGRATIONS_VIEW)
def list_integrations():
    return document({"items": [integration_document(i) for i in services.integrations(current())]}, etag=False)


@bp.post("")
@auth.scope(Permission.INTEGRATIONS_MANAGE)
def create_integration():
    values = body(IntegrationIn())
    try:
        integration, secret = services.create(current(), values["provider"], values["name"], values["config"],
                                              values["credentials"], values.get("description"))
    except RuleViolation as exc:
        raise _refused(exc) from None
    from ..extensions import db
    db.session.flush()
    db.session.refresh(integration)  # timestamps as stored
    return document(integration_document(integration, secret, created=True), 201, etag=False,
                    headers={"Location": url_for(".get_integration", integration_id=integration.id),
                             "Cache-Control": "no-store"})


@bp.get("/<uuid:integration_id>")
@auth.scope(Permission.INTEGRATIONS_VIEW)
def get_integration(integration_id: UUID):
    return document(integration_document(_integration(integration_id)))


def _refused(exc: RuleViolation) -> Problem:
    if exc.field and exc.field not in ("name", "description", "provider"):
        return Problem(422, exc.message, errors=field_error(f"config.{exc.field}", exc.message))
    return refused(exc)


@bp.patch("/<uuid:integration_id>")
@auth.scope(Permission.INTEGRATIONS_MANAGE)
def update_integration(integration_id: UUID):
    integration = _integration(integration_id, for_update=True)
    check_if_match(integration_document(integration))
    values = body(IntegrationPatch())
    try:
        services.update(current(), integration, values.get("name", integration.name),
                        {**(integration.config or {}), **values.get("config", {})},
                        values.get("description", integration.description))
    except RuleViolation as exc:
        raise _refused(exc) from None
    from ..extensions import db
    db.session.flush()
    db.session.refresh(integration)  # updated_at as stored
    return document(integration_document(integration))


@bp.post("/<uuid:integration_id>/credentials")
@auth.scope(Permission.INTEGRATIONS_MANAGE)
def replace_credentials(integration_id: UUID):
    integration = _integration(integration_id, for_update=True)
    values = body(CredentialsIn())
    try:
        secret = services.replace_credentials(current(), integration, values["credentials"])
    except RuleViolation as exc:
        raise _refused(exc) from None
    return document(CredentialsOut().dump({"signing_secret": secret}), etag=False, headers={"Cache-Control": "no-store"})


@bp.delete("/<uuid:integration_id>")
@auth.scope(Permission.INTEGRATIONS_MANAGE)
def delete_integration(integration_id: UUID):
    services.delete(current(), _integration(integration_id, for_update=True))
    return "", 204


def _change(integration_id: UUID, enabled: bool):
    integration = _integration(integration_id, for_update=True)
    try:
        services.set_enabled(current(), integration, enabled)
    except RuleViolation as exc:
        raise refused(exc) from None
    return document(integration_document(integration))


@bp.post("/<uuid:integration_id>/enable")
@auth.scope(Permission.INTEGRATIONS_MANAGE)
def enable_integration(integration_id: UUID):
    return _change(integration_id, True)


@bp.post("/<uuid:integration_id>/disable")
@auth.scope(Permission.INTEGRATIONS_MANAGE)
def disable_integration(integration_id: UUID):
    return _change(integration_id, False)


@bp.post("/<uuid:integration_id>/test")
@auth.scope(Permission.INTEGRATIONS_MANAGE)
def test_integration(integration_id: UUID):
    integration = _integration(integration_id, for_update=True)
    try:
        entry = services.send_test(current(), integration)
    except RuleViolation as exc:
        raise refused(exc) from None
    return document({"queued": True, "entry_id": str(entry.id)}, 202, etag=False)


@bp.post("/<uuid:integration_id>/sync")
@auth.scope(Permission.INTEGRATIONS_MANAGE)
def sync_integration(integration_id: UUID):
    integration = _integration(integration_id, for_update=True)
    try:
        services.sync_now(current(), integration)
    except RuleViolation as exc:
        raise refused(exc) from None
    return document({"queued": True, "entry_id": None}, 202, etag=False)


def _cursor(anchor) -> str:
    return base64.urlsafe_b64encode(f"{anchor[0].isoformat()}|{anchor[1]}".encode()).decode().rstrip("=")


def _uncursor(value: str):
    try:
        at, _, ident = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode().partition("|")
        return datetime.fromisoformat(at), UUID(ident)
    except (ValueError, UnicodeDecodeError):
        raise Problem(422, "Some query parameters are not valid.",
                      errors=field_error("cursor", "Not a cursor of this list: use the `next` link of a page.")) from None


def entry_document(e) -> dict:
    return LogEntryOut().dump({
        "id": e.id, "kind": e.kind, "event_type": e.event_type,
        "webhook_id": e.message_id if e.kind in ("delivery", "test") else None, "state": e.state,
        "attempts": e.attempts, "request": e.request or {}, "response": e.response or {}, "error": e.error,
        "duration_ms": e.duration_ms, "replay_of": e.replay_of, "created_at": e.created_at,
        "finished_at": e.finished_at})


@bp.get("/<uuid:integration_id>/log")
@auth.scope(Permission.INTEGRATIONS_VIEW)
def integration_log(integration_id: UUID):
    args = query(LogArgs())
    integration = _integration(integration_id)
    anchor = _uncursor(args["cursor"]) if args.get("cursor") else None
    rows, following = services.log_page(current(), integration, anchor, size=50)
    next_url = url_for(".integration_log", integration_id=integration.id, cursor=_cursor(following)) \
        if following else None
    return document({"items": [entry_document(e) for e in rows], "next": next_url}, etag=False,
                    headers={"Link": f'<{next_url}>; rel="next"'} if next_url else {})


@bp.post("/<uuid:integration_id>/log/<uuid:entry_id>/replay")
@auth.scope(Permission.INTEGRATIONS_MANAGE)
def replay_delivery(integration_id: UUID, entry_id: UUID):
    ctx = current()
    integration = _integration(integration_id, for_update=True)
    entry = services.log_entry(ctx, integration, entry_id)
    if entry is None:
        raise Problem(404, "No such log entry.")
    try:
        again = services.replay(ctx, integration, entry)
    except RuleViolation as exc:
        raise refused(exc) from None
    return document({"queued": True, "entry_id": str(again.id)}, 202, etag=False)


def _ops() -> dict:
    j, P = api_doc._json, api_doc.PROBLEM
    queued = j("Queued", description="Queued")
    return {
        "integrations_api.list_integrations": ("List integrations", [], None, {"200": j("IntegrationPage")}),
        "integrations_api.create_integration": (
            "Create an integration (its signing secret is in this answer only)", [], "IntegrationIn",
            {"201": j("IntegrationCreated", description="Created"), "400": P, "409": P, "415": P, "422": P}),
        "integrations_api.get_integration": ("Read an integration", [], None,
                                             {"200": j("IntegrationOut", api_doc.ETAG), "404": P}),
        "integrations_api.update_integration": (
            "Change an integration's name, description or configuration (the members given)", [api_doc.IF_MATCH],
            "IntegrationPatch", {"200": j("IntegrationOut", api_doc.ETAG), "400": P, "404": P, "409": P, "412": P,
                                 "415": P, "422": P, "428": P}),
        "integrations_api.replace_credentials": (
            "Replace the credentials (write-only; a signing secret is made anew and returned this once)", [],
            "CredentialsIn", {"200": j("CredentialsOut"), "400": P, "404": P, "409": P, "415": P, "422": P}),
        "integrations_api.delete_integration": ("Delete an integration and its log", [], None,
                                                {"204": {"description": "Deleted"}, "404": P}),
        "integrations_api.enable_integration": ("Enable an integration", [], None,
                                                {"200": j("IntegrationOut", api_doc.ETAG), "404": P, "409": P}),
        "integrations_api.disable_integration": ("Disable an integration", [], None,
                                                 {"200": j("IntegrationOut", api_doc.ETAG), "404": P, "409": P}),
        "integrations_api.test_integration": ("Send a test event to a webhook endpoint", [], None,
                                              {"202": queued, "404": P, "409": P}),
        "integrations_api.sync_integration": ("Sync a JSON source now", [], None, {"202": queued, "404": P, "409": P}),
        "integrations_api.integration_log": ("The delivery and sync log, newest first (cursor pages)",
                                             [{"in": "query", "schema": LogArgs}], None,
                                             {"200": j("LogPage"), "400": P, "404": P, "422": P}),
        "integrations_api.replay_delivery": ("Send a failed delivery again (same webhook-id)", [], None,
                                             {"202": queued, "404": P, "409": P}),
    }


def init_app(app: Flask) -> None:
    csrf.exempt(bp)  # bearer tokens, never cookies (as portal/api)
    app.register_blueprint(bp)
    api_doc.EXTENSIONS["integrations"] = (_ops(), {
        "IntegrationIn": IntegrationIn, "IntegrationOut": IntegrationOut, "IntegrationCreated": IntegrationCreated,
        "IntegrationPage": IntegrationPage, "LogEntryOut": LogEntryOut, "LogPage": LogPage, "Queued": Queued,
        "IntegrationPatch": IntegrationPatch, "CredentialsIn": CredentialsIn, "CredentialsOut": CredentialsOut})
