"""The API's HTTP conventions, written once: JSON bodies in, documents out with an ETag,
If-Match on changes (412 when stale, 428 when missing), Idempotency-Key on creates, rule
refusals as problem details."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from functools import wraps

from flask import Response, current_app, request
from marshmallow import Schema, ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from ..extensions import db
from ..jsondata import JsonValueError, parse_object
from ..rules import RuleViolation
from ..tenancy import current
from .models import IdempotencyKey
from .problems import Problem, field_error
from .schemas import field_errors

KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as in the IETF draft's examples


def body(schema: Schema, *, partial: bool = False) -> dict:
    if not request.mimetype or not (request.mimetype == "application/json" or request.mimetype.endswith("+json")):
        raise Problem(415, "Send the body as application/json.")
    try:
        raw = parse_object(request.get_data())  # bytes: invalid UTF-8 is refused, not replaced by U+FFFD
    except JsonValueError as exc:
        raise refused_json(exc) from None
    try:
        return schema.load(raw, partial=partial)
    except ValidationError as exc:
        raise Problem(422, "Some fields are not valid.", errors=field_errors(exc.messages))


def refused_json(exc: JsonValueError) -> Problem:
    """A body that is not JSON at all is a 400; a member the database cannot store, a 422 naming it."""
    if exc.path is None:
        return Problem(400, f"The body {exc}.")
    detail = str(exc)[0].upper() + str(exc)[1:] + "."
    return Problem(422, f"The body {exc} (at {exc.path or 'the top level'}).", errors=field_error(exc.path, detail))


def query(schema: Schema) -> dict:
    """The query string, read as the document describes it: a parameter that is unknown, given
    twice or not valid is a 422 naming it (the pages' lists ignore such values; a client that
    sent `status=onlin` should hear about it, not get every device)."""
    repeated = [name for name in request.args if len(request.args.getlist(name)) > 1]
    if repeated:
        raise Problem(422, "Some query parameters are not valid.",
                      errors=[{"field": name, "detail": "Give this parameter once."} for name in repeated])
    try:
        return schema.load(request.args.to_dict())
    except ValidationError as exc:
        raise Problem(422, "Some query parameters are not valid.", errors=field_errors(exc.messages)) from None


BAD_CURSOR = "Not a cursor of this list: use the `next` link of a page."


def bad_cursor() -> Problem:
    return Problem(422, "Some query parameters are not valid.", errors=field_error("cursor", BAD_CURSOR))


def cursor(position: str) -> str:
    """A list's position (a name, an email) as an opaque cursor."""
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def uncursor(value: str) -> str:
    """The position of a cursor `cursor()` made; a 422 naming `cursor` for anything else."""
    try:
        # validate: the lenient default skips stray characters, and a mangled cursor became a name
        text = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise bad_cursor() from None
    if "\x00" in text:
        raise bad_cursor()
    return text


def refused(exc: RuleViolation) -> Problem:
    """A rule's refusal: 422 naming the field, or 409 when it is about the resource's state."""
    if exc.field:
        return Problem(422, exc.message, errors=field_error(exc.field, exc.message))
    return Problem(409, exc.message)


def etag_of(document: dict) -> str:
    digest = hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).digest()
    return '"' + base64.urlsafe_b64encode(digest[:18]).decode() + '"'


def document(payload: dict, status: int = 200, *, etag: bool = True, headers: dict | None = None) -> Response:
    response = current_app.response_class(json.dumps(payload, default=str), status=status,
                                          mimetype="application/json")
    if etag:
        response.headers["ETag"] = etag_of(payload)
    response.headers["Cache-Control"] = "private, no-cache"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def check_if_match(current_document: dict, *, required: bool = True) -> None:
    given = request.headers.get("If-Match")
    if not given:
        if required:
            raise Problem(428, "Send If-Match with the ETag of the version you are changing (GET it first).")
        return
    tags = [t.strip() for t in given.split(",")]
    if "*" not in tags and etag_of(current_document) not in tags:
        raise Problem(412, "The resource has changed since you read it: GET it again and retry.")


def idempotent(view):
    """A create sent again with the same Idempotency-Key (within API_IDEMPOTENCY_HOURS) gets
    the first response again, marked `Idempotent-Replayed: true`, without a second create.
    Only successful creates are kept (a refused one rolls back with its key). The same key with
    a different request is a 422."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        if not KEY.match(key):
            raise Problem(400, "Idempotency-Key must be 1 to 255 visible ASCII characters.")
        ctx = current()
        client_ref = (ctx.client or ctx.via).id
        if ctx.via is not None:  # an app's keys are each person's own: one never replays another's
            key = "u:" + hashlib.sha256(f"{ctx.user_id}\n{key}".encode()).hexdigest()  # fits the column
        fingerprint = hashlib.sha256(f"{request.method} {request.path}\n".encode() + request.get_data()).digest()
        now = datetime.now(UTC)
        expires = now + timedelta(hours=current_app.config["API_IDEMPOTENCY_HOURS"])
        table = IdempotencyKey.__table__
        # Waits on a concurrent first request with this key until it commits or rolls back.
        claimed = db.session.execute(
            insert(table).values(tenant_id=ctx.tenant_id, client_ref=client_ref, key=key, fingerprint=fingerprint,
                                 expires_at=expires)
            .on_conflict_do_update(index_elements=["tenant_id", "client_ref", "key"],
                                   set_={"fingerprint": fingerprint, "status": None, "body": None, "location": None,
                                         "created_at": now, "expires_at": expires},
                                   where=table.c.expires_at <= now)
            .returning(table.c.key)).first()
        if claimed is None:
            first = db.session.scalar(select(IdempotencyKey).where(
                IdempotencyKey.tenant_id == ctx.tenant_id, IdempotencyKey.client_ref == client_ref,
                IdempotencyKey.key == key))
            if first is None:  # pruned between the two statements: let the client retry
                raise Problem(409, "Retry this request.", headers={"Retry-After": "1"})
            if first.fingerprint != fingerprint:
                raise Problem(422, "This Idempotency-Key was used for a different request.")
            if first.status is None:
                raise Problem(409, "A request with this Idempotency-Key is still in progress.")
            headers = {"Idempotent-Replayed": "true", **({"Location": first.location} if first.location else {})}
            return document(first.body, first.status, headers=headers)
        response = view(*args, **kwargs)
        if response.status_code < 400:
            db.session.execute(table.update().where(
                table.c.tenant_id == ctx.tenant_id, table.c.client_ref == client_ref, table.c.key == key)
                .values(status=response.status_code, body=response.get_json(), location=response.headers.get("Location")))
        return response
    return wrapped
