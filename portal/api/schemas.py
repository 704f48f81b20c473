"""The API's documents as marshmallow schemas: they validate what comes in, shape what goes
out, and are the OpenAPI document's components (openapi.py), so the three cannot disagree."""
from __future__ import annotations

from marshmallow import (
    INCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from ..devices.models import DeviceStatus, DeviceType
from ..oneline import MESSAGE as ONE_LINE
from ..oneline import PATTERN as ONE_LINE_PATTERN
from ..oneline import control_character
from ..analytics.events import BATCH_MAX as EVENTS_MAX
from ..devices.queries import SEARCH_MAX, SORTS
from ..devices.services import BULK_MAX
from ..sites.services import WEEKDAYS
from ..tenancy import Permission
from ..timezones import is_timezone

HOURS = r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$"
NO_NUL = r"^[^\x00]*$"
LIMIT_MAX = 200


class Text(fields.String):
    """A trimmed, one-line string: no NUL (PostgreSQL text cannot hold it), no line breaks or other
    control characters (names reach email subjects: portal.oneline)."""

    def __init__(self, *args, **kwargs):
        kwargs["metadata"] = {"pattern": ONE_LINE_PATTERN, **(kwargs.get("metadata") or {})}
        super().__init__(*args, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in value:
            raise ValidationError("Must not contain the NUL character.")
        value = value.strip()
        if control_character(value) is not None:
            raise ValidationError(ONE_LINE)
        return value


def _required_text(max_length: int) -> Text:
    return Text(required=True, validate=validate.Length(min=1, max=max_length))


def _optional_text(max_length: int) -> Text:
    return Text(allow_none=True, validate=validate.Length(max=max_length))


class Strict(Schema):
    class Meta:
        unknown = RAISE


class Contact(Strict):
    name = _optional_text(200)
    phone = _optional_text(50)
    email = fields.Email(allow_none=True, validate=validate.Length(max=320))


class SiteIn(Strict):
    name = _required_text(200)
    address = _optional_text(500)
    timezone = Text(load_default="UTC", validate=validate.Length(min=1, max=64),
                    metadata={"description": "An IANA time zone, e.g. Europe/Paris"})
    latitude = fields.Float(allow_none=True, validate=validate.Range(-90, 90), allow_nan=False)
    longitude = fields.Float(allow_none=True, validate=validate.Range(-180, 180), allow_nan=False)
    operating_hours = fields.Dict(keys=fields.String(validate=validate.OneOf(WEEKDAYS)),
                                  values=fields.String(validate=validate.Regexp(HOURS)), load_default=dict)
    contact = fields.Nested(Contact, load_default=dict)

    @validates_schema
    def _zone(self, data, **kwargs):
        if "timezone" in data and not is_timezone(data["timezone"]):
            raise ValidationError("Not a known IANA time zone.", "timezone")


class SitePatch(SiteIn):
    """Only the fields given change."""
    name = Text(validate=validate.Length(min=1, max=200))
    timezone = Text(validate=validate.Length(min=1, max=64))
    operating_hours = fields.Dict(keys=fields.String(validate=validate.OneOf(WEEKDAYS)),
                                  values=fields.String(validate=validate.Regexp(HOURS)))
    contact = fields.Nested(Contact)


class Query(Strict):
    """A list's query parameters: what is not one of them, or not valid, is a 422 naming it."""
    error_messages = {"unknown": "Not a parameter of this operation."}


class Cursor(fields.String):
    def __init__(self, **kwargs):
        super().__init__(validate=validate.Length(max=500), metadata={
            "pattern": NO_NUL, "description": "From the previous page's `next` link"}, **kwargs)


class SiteListArgs(Query):
    archived = fields.Boolean(truthy={"true"}, falsy={"false"}, load_default=False,
                              metadata={"description": "true: the archived sites instead of the active ones"})
    cursor = Cursor()


class DeviceListArgs(Query):
    q = Text(validate=validate.Length(max=SEARCH_MAX), metadata={"description": "Prefix of the name or serial number"})
    site = fields.UUID(metadata={"description": "Only the devices of this site"})
    type = fields.Enum(DeviceType, by_value=True)
    status = fields.Enum(DeviceStatus, by_value=True)
    sort = fields.String(validate=validate.OneOf(list(SORTS)))
    dir = fields.String(validate=validate.OneOf(["asc", "desc"]))
    limit = fields.Integer(validate=validate.Range(1, LIMIT_MAX), metadata={"description": "Page size (default 50)"})
    cursor = Cursor()


class SiteOut(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    address = fields.String(allow_none=True, required=True)
    timezone = fields.String(required=True)
    latitude = fields.String(allow_none=True, required=True)
    longitude = fields.String(allow_none=True, required=True)
    operating_hours = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    contact = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    archived = fields.Boolean(required=True)
    archived_at = fields.DateTime(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class SitePage(Schema):
    items = fields.List(fields.Nested(SiteOut), required=True)
    next = fields.String(allow_none=True, required=True, metadata={"description": "URL of the next page, or null"})


class DeviceIn(Strict):
    name = _required_text(200)
    type = fields.Enum(DeviceType, by_value=True, required=True)
    serial_number = _required_text(100)
    site_id = fields.UUID(required=True)
    status = fields.Enum(DeviceStatus, by_value=True, load_default=DeviceStatus.OFFLINE)
    firmware_version = _optional_text(64)
    last_seen_at = fields.AwareDateTime(allow_none=True, default_timezone=None)
    specs = fields.Dict(allow_none=True)
    configuration = fields.Dict(allow_none=True)


class DevicePatch(DeviceIn):
    """Only the fields given change. Status changes go through bulk-status or decommission."""
    name = Text(validate=validate.Length(min=1, max=200))
    type = fields.Enum(DeviceType, by_value=True)
    serial_number = Text(validate=validate.Length(min=1, max=100))
    site_id = fields.UUID()
    status = fields.Enum(DeviceStatus, by_value=True)


class DeviceOut(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    type = fields.Enum(DeviceType, by_value=True, required=True)
    serial_number = fields.String(required=True)
    status = fields.Enum(DeviceStatus, by_value=True, required=True)
    site_id = fields.UUID(required=True)
    firmware_version = fields.String(allow_none=True, required=True)
    last_seen_at = fields.DateTime(allow_none=True, required=True)
    specs = fields.Dict(allow_none=True, required=True)
    configuration = fields.Dict(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class DeviceItem(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    type = fields.Enum(DeviceType, by_value=True, required=True)
    serial_number = fields.String(required=True)
    status = fields.Enum(DeviceStatus, by_value=True, required=True)
    site_id = fields.UUID(required=True)
    site_name = fields.String(required=True)
    firmware_version = fields.String(allow_none=True, required=True)
    last_seen_at = fields.DateTime(allow_none=True, required=True)


class DevicePage(Schema):
    items = fields.List(fields.Nested(DeviceItem), required=True)
    next = fields.String(allow_none=True, required=True, metadata={"description": "URL of the next page, or null"})


class BulkStatusIn(Strict):
    ids = fields.List(fields.UUID(), required=True, validate=validate.Length(min=1, max=BULK_MAX))
    status = fields.Enum(DeviceStatus, by_value=True, required=True)


class BulkStatusOut(Schema):
    changed = fields.Integer(required=True)


class EventIn(Schema):
    """One custom analytics event (portal/analytics/events.py validates it in full)."""
    type = fields.String(required=True, metadata={"description": "lower-case dotted name, e.g. door.opened"})
    name = fields.String(metadata={"description": "a label shown with the event"})
    properties = fields.Dict(metadata={"description": "a JSON object of at most 4 KiB"})
    occurred_at = fields.String(metadata={"description": "ISO 8601, within the last 7 days (default: now)"})
    source_id = fields.String(metadata={"description": "the sender's own id of the event"})


class EventsIn(Strict):
    # Items stay raw dicts: the analytics validator reports every event's errors by JSON pointer.
    events = fields.List(fields.Nested(EventIn), required=True, validate=validate.Length(min=1, max=EVENTS_MAX))


class EventsOut(Schema):
    recorded = fields.Integer(required=True)


# --- Roles and members ---------------------------------------------------------------------

ROLE_KINDS = ("system", "custom")
ROLE_SET_MAX = 51  # one built-in role and at most 50 custom roles (roles.services.MAX_CUSTOM_ROLES)


class RoleOut(Schema):
    key = fields.String(required=True, metadata={"description": "A built-in role's name (owner, admin, member, "
                                                                "viewer) or a custom role's id: what PATCH takes"})
    name = fields.String(required=True)
    description = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ROLE_KINDS))
    permissions = fields.List(fields.String(), required=True)


class RoleList(Schema):
    items = fields.List(fields.Nested(RoleOut), required=True,
                        metadata={"description": "The built-in roles first, then the organization's own by name"})


class RoleRef(Schema):
    key = fields.String(required=True)
    name = fields.String(required=True)


class MemberOut(Schema):
    user_id = fields.UUID(required=True)
    email = fields.String(required=True)
    name = fields.String(allow_none=True, required=True)
    status = fields.String(required=True, validate=validate.OneOf(["active", "invited", "suspended"]))
    role = fields.String(required=True, metadata={"description": "The base role's key (the owner rules read it)"})
    roles = fields.List(fields.Nested(RoleRef), required=True,
                        metadata={"description": "Every role held: the base role first, then further custom roles"})
    permissions = fields.List(fields.String(), required=True, metadata={"description": "The union of the roles'"})
    all_sites = fields.Boolean(required=True, metadata={"description": "The roles see every site (sites:see-all)"})
    site_ids = fields.List(fields.UUID(), required=True, metadata={"description": "The active sites assigned"})


class MemberPage(Schema):
    items = fields.List(fields.Nested(MemberOut), required=True)
    next = fields.String(allow_none=True, required=True, metadata={"description": "URL of the next page, or null"})


class MemberListArgs(Query):
    q = Text(validate=validate.Length(max=100), metadata={"description": "Part of the name or email"})
    cursor = Cursor()


class MemberPatch(Strict):
    roles = fields.List(fields.String(validate=validate.Length(min=1, max=64)), required=True,
                        validate=validate.Length(min=1, max=ROLE_SET_MAX),
                        metadata={"description": "Role keys (GET /api/v1/roles): at most one built-in role, which "
                                                 "is the base role; without one, the first listed is. The others are "
                                                 "held besides it. Exactly these roles afterwards."})


class FieldError(Schema):
    field = fields.String(required=True)
    detail = fields.String(required=True)


class ProblemOut(Schema):
    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    instance = fields.String()
    errors = fields.List(fields.Nested(FieldError))


def field_errors(messages, prefix: str = "") -> list[dict]:
    """marshmallow's nested messages as [{"field": "contact.email", "detail": "..."}]."""
    out = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out += field_errors(value, "" if key == "_schema" else name) if isinstance(value, dict) \
                else [{"field": name if key != "_schema" else prefix, "detail": str(m)}
                      for m in (value if isinstance(value, list) else [value])]
    else:
        out.append({"field": prefix, "detail": str(messages)})
    return out


# --- /oauth/* (Authlib answers them; these describe what it reads and writes) -------------------

_SCOPES = "|".join(p.value for p in Permission)  # [a-z:-] only: nothing to escape


class OAuthForm(Schema):
    class Meta:
        unknown = INCLUDE  # RFC 6749 3.2: the server MUST ignore unrecognized request parameters


class TokenIn(OAuthForm):
    grant_type = fields.String(required=True, validate=validate.OneOf(["client_credentials"]))
    scope = fields.String(metadata={"description": "Space-separated scopes, all held by the client (default: all "
                                                   "of them); any other is `invalid_scope`",
                                    "pattern": rf"^\s*(({_SCOPES})(\s+({_SCOPES}))*)?\s*$"})
    client_id = fields.String(metadata={"description": "With client_secret, instead of HTTP Basic"})
    client_secret = fields.String()


class TokenOut(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, validate=validate.OneOf(["Bearer"]))
    expires_in = fields.Integer(required=True)
    scope = fields.String(required=True, metadata={"description": "The scopes granted"})


class TokenRef(OAuthForm):
    token = fields.String(required=True)
    token_type_hint = fields.String(validate=validate.OneOf(["access_token", ""]),
                                    metadata={"description": "Only access tokens exist here; empty: no hint"})


class Introspection(Schema):
    """RFC 7662: only `active: false` for a token that is not the client's own or not live."""
    active = fields.Boolean(required=True)
    client_id = fields.String()
    token_type = fields.String()
    scope = fields.String()
    exp = fields.Integer()
    iat = fields.Integer()
    sub = fields.String()


class OAuthError(Schema):
    """RFC 6749 5.2."""
    error = fields.String(required=True, metadata={"description": "invalid_request, invalid_client, invalid_grant, "
                                                                  "unauthorized_client, unsupported_grant_type, "
                                                                  "invalid_scope, unsupported_token_type"})
    error_description = fields.String()
    error_uri = fields.String()
