"""Inbound events: POST /hooks/<integration id> accepts a batch of events signed the Standard
Webhooks way and records them as analytics events of the integration's tenant.

The URL's id is the only thing the request names; `portal_integration_inbound(id)` (SECURITY
DEFINER) answers its tenant and enters it for RLS, as an agent's credential does. Then, in this
order: the headers must be there, the timestamp within INBOUND_TOLERANCE_SECONDS of now (so
an old captured request is refused without a lookup), the signature must match the
integration's secret, and the webhook-id must be new (ids are kept a day, longer than any
timestamp is accepted, so a replay is refused either way). The body is `{"events": [...]}` or a
bare list, checked as `POST /api/v1/events` checks it: all or nothing.
"""
from __future__ import annotations

import json
import time
from uuid import UUID

from flask import Blueprint, current_app, request
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from .. import keys
from ..analytics.events import event, record_many, validate_custom
from ..database.context import acting_as, adopt
from ..extensions import csrf, db
from .delivery import body_text, heads, now
from .models import InboundId, Integration, IntegrationStatus, LogEntry
from .services import credentials_of

bp = Blueprint("inbound", __name__, url_prefix="/hooks")
csrf.exempt(bp)
BODY_MAX = 1024 * 1024


def problem(status: int, title: str, **extra):
    body = {"type": "about:blank", "title": title, "status": status, **extra}
    return current_app.response_class(json.dumps(body), status=status, mimetype="application/problem+json")


_ENTER = text("SELECT i.t, current_setting('app.permissions', true) FROM portal_integration_inbound(:id) AS i(t)")


@bp.post("/<uuid:integration_id>")
def receive(integration_id: UUID):
    body = request.get_data(cache=True)
    if len(body) > BODY_MAX:
        return problem(413, f"A batch is at most {BODY_MAX // 1024} KiB.")
    # The function enters the tenant and lets the hook record events (app.permissions), read back.
    tenant_id, permissions = db.session.execute(_ENTER, {"id": integration_id}).one()
    if tenant_id is None:
        return problem(404, "No such inbound integration.")
    adopt(tenant_id=tenant_id, permissions=permissions)  # later transactions of the request too
    integration = db.session.scalar(select(Integration).where(Integration.tenant_id == tenant_id,
                                                              Integration.id == integration_id))
    if not integration.enabled:
        return problem(403, "This integration is disabled; enable it on its page to receive events.")
    headers = {k.lower(): v for k, v in request.headers.items()}
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not (msg_id and stamp and headers.get("webhook-signature")):
        return problem(400, "Sign the request: webhook-id, webhook-timestamp and webhook-signature headers "
                            "(Standard Webhooks).")
    if len(msg_id) > 200:
        return problem(400, "The webhook-id is at most 200 characters.")
    tolerance = current_app.config["INBOUND_TOLERANCE_SECONDS"]
    try:
        age = time.time() - int(stamp)
    except ValueError:
        return problem(400, "webhook-timestamp must be seconds since 1970 (an integer).")
    if abs(age) > tolerance:
        return problem(401, f"The timestamp is {'too old' if age > 0 else 'in the future'}: it must be within "
                            f"{tolerance} seconds of now.")
    try:
        secret = credentials_of(integration)["signing_secret"]
    except (keys.Unreadable, KeyError):
        return problem(503, "This integration's secret cannot be read; its owners must replace it.")
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except WebhookVerificationError:
        return problem(401, "The signature does not match this integration's secret.")
    new = db.session.execute(insert(InboundId).values(tenant_id=tenant_id, integration_id=integration.id,
                                                      webhook_id=msg_id)
                             .on_conflict_do_nothing().returning(InboundId.webhook_id)).scalar()
    if new is None:
        return problem(409, "This webhook-id was received already: a replay is not recorded twice.")
    try:
        data = json.loads(body)
    except ValueError:
        return problem(400, "The body is not JSON.")
    events = data.get("events") if isinstance(data, dict) else data
    rows, errors = validate_custom(events)
    if errors:
        return problem(422, "Some events are not valid; none was recorded.",
                       errors=[e.as_dict() for e in errors[:100]])
    count = record_many(tenant_id, [event(r["kind"], r["props"], r["when"], name=r["name"], source="inbound",
                                          source_id=r["source_id"]) for r in rows])
    db.session.add(LogEntry(tenant_id=tenant_id, integration_id=integration.id, kind="inbound", state="succeeded",
                            attempts=1, event_type=None, payload={"records": count, "webhook_id": msg_id},
                            request={"method": "POST", "url": request.path,
                                     "headers": heads(dict(request.headers), [secret]),
                                     "body": body_text(body, [secret]), "at": now().isoformat()},
                            response={"status": 202}, finished_at=now()))
    # Its own state, written by the signed hook as the system: the request may otherwise only
    # record events (integrations:manage guards the row).
    with acting_as(db.session, f"hook:{integration.id}"):
        integration.last_sync_at, integration.sync_status, integration.sync_error = now(), "received", None
        if integration.status != IntegrationStatus.DISABLED:
            integration.status = IntegrationStatus.ACTIVE
    return current_app.response_class(json.dumps({"recorded": count}), status=202, mimetype="application/json")
