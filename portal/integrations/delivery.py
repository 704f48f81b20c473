"""Outbound webhooks: deliveries queued in the emitting transaction, sent by the worker.

- **Outbox.** `on_events` (an `events.subscribers` entry) writes one `integration_log` row per
  subscribed endpoint and event, and one `integrations.deliver` job per row, in the request's
  own transaction: a change that rolls back sends nothing, a committed one is delivered at
  least once.
- **Signing.** Standard Webhooks (`standardwebhooks`): `webhook-id` (the same for every attempt
  and replay of a message), `webhook-timestamp` (the attempt's), `webhook-signature` (`v1,`
  HMAC-SHA256 of `id.timestamp.body` with the endpoint's `whsec_` secret).
- **Retries.** Any answer but 2xx, a timeout or a connection failure is retried after
  `WEBHOOK_RETRY_SECONDS × 2^(n-1)`, at most `WEBHOOK_RETRY_MAX_SECONDS` apart, each delay
  scaled by a random 0.8–1.2 (jitter, so endpoints that come back are not hit by every retry at
  once), for `WEBHOOK_MAX_ATTEMPTS` attempts: with the defaults (30 s, 3 h, 16) about 22 hours.
- **Order.** Event types marked `ordered` in the catalogue share one procrastinate lock per
  endpoint: one at a time, oldest first, and a delivery being retried holds back the later ones.
- **Circuit breaker.** Failed attempts in a row are counted on the endpoint (any success resets
  them); after `WEBHOOK_BREAKER_FAILURES` of them spanning at least `WEBHOOK_BREAKER_HOURS`, the
  endpoint is disabled, its owners and admins are notified and the rest of its queue fails
  (each can be replayed once it is enabled again).
- **The log** keeps each delivery's last request and response heads, the bodies truncated to
  4 KiB, credentials replaced by `[redacted]`.
"""
from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from flask import current_app
from sqlalchemy import select
from standardwebhooks import Webhook

from .. import audit, egress, keys
from ..events import CATALOGUE, Event
from ..extensions import db
from ..jobs.engine import defer_many
from ..notifications import Kind, notify
from ..tenancy import Permission
from ..tenancy.models import Membership, MembershipStatus
from ..tenancy.roles import holds_condition
from ..tenants.models import Tenant
from .models import Integration, IntegrationStatus, LogEntry
from .services import credentials_of

BODY_LOG_MAX = 4096
RESPONSE_MAX = 64 * 1024
USER_AGENT = "Portal-Webhooks/1.0"
REDACTED = "[redacted]"
SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}


def now() -> datetime:
    return datetime.now(UTC)


# --- Queueing (in the emitting transaction) ---------------------------------------------------

def on_events(tenant_id: UUID, batch: list[Event]) -> None:
    """events.subscribers entry: one delivery per enabled endpoint subscribed to each event."""
    endpoints = db.session.execute(select(Integration.id, Integration.config).where(
        Integration.tenant_id == tenant_id, Integration.provider == "webhook", Integration.enabled)).all()
    if not endpoints:
        return  # the common case: one indexed read, nothing else
    entries = []
    for endpoint in endpoints:
        wanted = set((endpoint.config or {}).get("events") or ())
        for event in batch:
            if event.type in wanted:
                entries.append(_entry(tenant_id, endpoint.id, event.type, envelope(event.type, event.data,
                                                                                  event.occurred_at), "delivery"))
    _queue(entries)


def envelope(type_: str, data: dict[str, Any], at: datetime | None) -> dict[str, Any]:
    """The body every endpoint receives (the Standard Webhooks payload shape)."""
    return {"type": type_, "timestamp": (at or now()).isoformat(), "data": data}


def _entry(tenant_id: UUID, integration_id: UUID, type_: str, payload: dict, kind: str,
           replay_of: UUID | None = None) -> LogEntry:
    # The id is made here, not by the database: the jobs are queued in the same round trips.
    return LogEntry(tenant_id=tenant_id, id=uuid.uuid4(), integration_id=integration_id, kind=kind,
                    event_type=type_, payload=payload, state="pending", attempts=0, replay_of=replay_of,
                    request={}, response={})


def _queue(entries: list[LogEntry]) -> None:
    if not entries:
        return
    db.session.add_all(entries)
    db.session.flush()  # the rows exist before their jobs can run
    groups: dict[str | None, list[dict]] = {}
    for e in entries:
        ordered = CATALOGUE.get(e.event_type) is not None and CATALOGUE[e.event_type].ordered
        groups.setdefault(f"integration:{e.integration_id}" if ordered else None, []).append(
            {"tenant_id": str(e.tenant_id), "entry_id": str(e.id)})
    for lock, kwargs in groups.items():
        defer_many("integrations.deliver", kwargs, lock=lock)


def queue(integration: Integration, type_: str, data_or_payload: dict, at: datetime | None, *, kind: str,
          replay_of: UUID | None = None) -> LogEntry:
    """One delivery to one endpoint (a test event, a replay). A replay passes the stored payload."""
    payload = data_or_payload if replay_of else envelope(type_, data_or_payload, at)
    entry = _entry(integration.tenant_id, integration.id, type_, payload, kind, replay_of)
    _queue([entry])
    return entry


# --- Sending (in the worker) --------------------------------------------------------------------

@dataclass
class Outcome:
    state: str                        # succeeded | retrying | failed | gone
    retry_in: float | None = None     # seconds, when retrying


def backoff(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`, jittered."""
    config = current_app.config
    base = config["WEBHOOK_RETRY_SECONDS"] * 2 ** (attempt - 1)
    return min(base, config["WEBHOOK_RETRY_MAX_SECONDS"]) * random.uniform(0.8, 1.2)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def heads(headers: dict[str, str], secrets: list[str]) -> dict[str, str]:
    return {k: REDACTED if k.lower() in SECRET_HEADERS else redact(str(v), secrets)[:500]
            for k, v in list(headers.items())[:50]}


def body_text(body: bytes | None, secrets: list[str]) -> str:
    text = (body or b"")[:BODY_LOG_MAX * 2].decode("utf-8", "replace")
    text = redact(text, secrets)
    return text[:BODY_LOG_MAX] + ("…" if len(text) > BODY_LOG_MAX or len(body or b"") > BODY_LOG_MAX * 2 else "")


def attempt(tenant_id: UUID, entry_id: UUID) -> Outcome:
    """One attempt at one delivery, under the tenant's RLS; the caller commits. The delivery's row
    is locked for the attempt, so two workers never send it at once."""
    entry = db.session.scalar(select(LogEntry).where(LogEntry.tenant_id == tenant_id, LogEntry.id == entry_id)
                              .with_for_update(key_share=True))
    if entry is None or entry.state in ("succeeded", "failed"):
        return Outcome("gone")
    endpoint = db.session.scalar(select(Integration).where(Integration.tenant_id == tenant_id,
                                                           Integration.id == entry.integration_id))
    if not endpoint.enabled:
        return _finish(entry, "failed", "Not sent: the endpoint is disabled. Replay it once the endpoint is enabled.")
    try:
        secret = credentials_of(endpoint)["signing_secret"]
    except (keys.Unreadable, KeyError):
        return _finish(entry, "failed", "Not sent: the endpoint's signing secret cannot be read; "
                                        "replace it on the integration's page.")
    body = json.dumps(entry.payload, separators=(",", ":")).encode()
    at = now()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "webhook-id": entry.message_id,
               "webhook-timestamp": str(int(at.timestamp())),
               "webhook-signature": Webhook(secret).sign(entry.message_id, at, body)}
    url = endpoint.config["url"]
    entry.attempts += 1
    entry.request = {"method": "POST", "url": url, "headers": heads(headers, [secret]),
                     "body": body_text(body, [secret]), "at": at.isoformat()}
    error, permanent = None, False
    try:
        response = egress.request("POST", url, headers=headers, body=body,
                                  timeout=current_app.config["WEBHOOK_TIMEOUT"], max_bytes=RESPONSE_MAX,
                                  max_redirects=0)
    except egress.Refused as exc:
        error, permanent = str(exc), True
        entry.response, entry.duration_ms = {}, None
    except egress.Failed as exc:
        error = str(exc)
        entry.response, entry.duration_ms = {}, int((now() - at).total_seconds() * 1000)
    else:
        entry.duration_ms = response.elapsed_ms
        entry.response = {"status": response.status, "headers": heads(dict(response.headers), [secret]),
                          "body": body_text(response.body, [secret])}
        if not 200 <= response.status < 300:
            error = f"The endpoint answered {response.status}."
    locked = db.session.scalar(select(Integration).where(Integration.tenant_id == tenant_id,
                                                         Integration.id == endpoint.id)
                               .with_for_update(key_share=True).execution_options(populate_existing=True))
    if error is None:
        _succeeded(locked)
        return _finish(entry, "succeeded", None)
    tripped = _failed(locked, error)
    max_attempts = current_app.config["WEBHOOK_MAX_ATTEMPTS"]
    if permanent or tripped or entry.attempts >= max_attempts:
        why = " The endpoint was disabled by the circuit breaker." if tripped else ""
        return _finish(entry, "failed", f"{error} Gave up after {entry.attempts} attempt"
                                        f"{'' if entry.attempts == 1 else 's'}.{why}")
    delay = backoff(entry.attempts)
    entry.state = "retrying"
    entry.error = (f"{error} Attempt {entry.attempts} of {max_attempts}; the next one around "
                   f"{(now() + timedelta(seconds=delay)).strftime('%Y-%m-%d %H:%M:%S')} UTC.")
    return Outcome("retrying", delay)


def _finish(entry: LogEntry, state: str, error: str | None) -> Outcome:
    entry.state, entry.error, entry.finished_at = state, error, now()
    return Outcome(state)


def _succeeded(endpoint: Integration) -> None:
    endpoint.failures_in_row, endpoint.failing_since = 0, None
    endpoint.last_sync_at, endpoint.sync_status, endpoint.sync_error = now(), "delivered", None
    if endpoint.status != IntegrationStatus.DISABLED:
        endpoint.status = IntegrationStatus.ACTIVE


def _failed(endpoint: Integration, error: str) -> bool:
    """Count a failed attempt; True when the breaker disables the endpoint now."""
    endpoint.failures_in_row += 1
    endpoint.failing_since = endpoint.failing_since or now()
    endpoint.sync_status, endpoint.sync_error = "failing", error[:500]
    if endpoint.status == IntegrationStatus.DISABLED or not endpoint.enabled:
        return False
    endpoint.status = IntegrationStatus.ERROR
    config = current_app.config
    if (endpoint.failures_in_row >= config["WEBHOOK_BREAKER_FAILURES"]
            and now() - endpoint.failing_since >= timedelta(hours=config["WEBHOOK_BREAKER_HOURS"])):
        trip(endpoint)
        return True
    return False


def trip(endpoint: Integration) -> None:
    """Disable an endpoint that keeps failing, and tell those who manage integrations."""
    before = {"name": endpoint.name, "enabled": True, "status": IntegrationStatus(endpoint.status).value}
    endpoint.enabled, endpoint.status = False, IntegrationStatus.DISABLED
    since = endpoint.failing_since.strftime("%Y-%m-%d %H:%M UTC")
    endpoint.sync_error = (f"Disabled automatically after {endpoint.failures_in_row} failed deliveries in a row "
                           f"(failing since {since}). Last error: {endpoint.sync_error}")[:1000]
    tenant = db.session.get(Tenant, endpoint.tenant_id)
    audit.record(endpoint.tenant_id, None, "integration.breaker", "integration", endpoint.id, before=before,
                 after={"name": endpoint.name, "enabled": False, "status": "disabled",
                        "failures": endpoint.failures_in_row})
    managers = select(Membership.user_id).where(Membership.tenant_id == endpoint.tenant_id,
                                                Membership.status == MembershipStatus.ACTIVE,
                                                holds_condition(Permission.INTEGRATIONS_MANAGE))
    notify(endpoint.tenant_id, managers, Kind.INTEGRATION_DISABLED,
           {"name": endpoint.name, "tenant": tenant.name, "failures": endpoint.failures_in_row},
           f"/t/{tenant.slug}/integrations/{endpoint.id}")
