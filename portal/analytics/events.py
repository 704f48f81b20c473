"""Recording analytics events: one row (`record`), a batch in one INSERT (`record_many`), the
portal's own events (device status changes, a member's sign-in to a tenant, agent task
outcomes) and custom events sent by machines (`record_custom`, validated as a whole batch).

Recording is not an audited change: the events are themselves the record, and an audit row per
event would double every write. Services call these inside the request's transaction and never
commit.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from sqlalchemy import text

from ..events import emit as emit_event, emit_many as emit_events
from ..extensions import db
from ..tenancy import TenantContext

DEVICE_STATUS = "device.status"
MEMBER_SIGNIN = "member.signin"
AGENT_TASK = "agent.task"
# Namespaces the portal writes itself: a custom event may not pose as one (the charts trust them).
RESERVED = ("device", "member", "agent", "portal")

BATCH_MAX = 1_000
PROPERTIES_MAX_BYTES = 4_096
PAST_WINDOW = timedelta(days=7)
FUTURE_WINDOW = timedelta(minutes=5)
TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+){0,3}")
TYPE_MAX = 100
TEXT_MAX = 200
CUSTOM_FIELDS = {"type", "name", "properties", "occurred_at", "source_id"}

# One statement for any number of rows: the batch travels as one JSON parameter, and the daily
# rollup is kept in the same statement (rows upserted in key order, so two batches never deadlock).
_INSERT = text("""
WITH ins AS (
    INSERT INTO analytics_events (tenant_id, occurred_at, event_type, event_name, properties, source, source_id, actor_id)
    SELECT CAST(:tenant AS uuid), coalesce(r.occurred_at, now()), r.event_type, r.event_name,
           coalesce(r.properties, '{}'::jsonb), coalesce(r.source, 'portal'), r.source_id, r.actor_id
      FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(occurred_at timestamptz, event_type text, event_name text,
                                                         properties jsonb, source text, source_id text, actor_id uuid)
    RETURNING occurred_at, event_type, source, properties)
INSERT INTO analytics_daily AS d (tenant_id, day, event_type, events, online_delta)
SELECT CAST(:tenant AS uuid), (occurred_at AT TIME ZONE 'UTC')::date, event_type, count(*),
       coalesce(sum(CASE WHEN event_type = 'device.status' AND source = 'portal'
                         THEN coalesce((properties->>'to' = 'online')::int, 0)
                              - coalesce((properties->>'from' = 'online')::int, 0) END), 0)
  FROM ins GROUP BY 2, 3 ORDER BY 2, 3
ON CONFLICT (tenant_id, day, event_type) DO UPDATE
   SET events = d.events + excluded.events, online_delta = d.online_delta + excluded.online_delta
""")


def _row(type_: str, properties: dict | None, occurred_at: datetime | None, actor: UUID | None, *,
         name: str | None = None, source: str = "portal", source_id: str | None = None) -> dict[str, Any]:
    return {"event_type": type_, "event_name": name, "properties": properties or {},
            "occurred_at": occurred_at.isoformat() if occurred_at else None, "source": source,
            "source_id": source_id, "actor_id": str(actor) if actor else None}


def record(tenant_id: UUID, type_: str, properties: dict | None = None, occurred_at: datetime | None = None,
           actor: UUID | None = None, **extra: Any) -> None:
    """One event (`occurred_at` defaults to the transaction's time)."""
    record_many(tenant_id, [_row(type_, properties, occurred_at, actor, **extra)])


def record_many(tenant_id: UUID, rows: list[dict[str, Any]]) -> int:
    """Rows as `event(...)` builds them, in one INSERT statement; returns how many."""
    if rows:
        db.session.execute(_INSERT, {"tenant": str(tenant_id), "rows": json.dumps(rows, default=str)})
    return len(rows)


def event(type_: str, properties: dict | None = None, occurred_at: datetime | None = None,
          actor: UUID | None = None, **extra: Any) -> dict[str, Any]:
    """A row for record_many."""
    return _row(type_, properties, occurred_at, actor, **extra)


# --- The portal's own events ------------------------------------------------------------------

def device_status_event(device, before: str | None, actor: UUID | None) -> dict[str, Any] | None:
    """The row of a device's status change (None when nothing changed). `before` is None for a new
    device. The devices-online chart adds up these changes (see queries.online_per_day)."""
    after = getattr(device.status, "value", device.status)
    if before == after:
        return None
    return event(DEVICE_STATUS, {"device_id": str(device.id), "site_id": str(device.site_id),
                                 "from": before, "to": after}, actor=actor, source_id=str(device.id))


def device_status_changed(ctx: TenantContext, changes: list[tuple[Any, str | None]]) -> int:
    """[(device, status before)] after the devices changed, in one statement; the same changes
    go to the event catalogue (`device.created` when there was no status before)."""
    rows = [r for r in (device_status_event(d, before, ctx.user_id) for d, before in changes) if r]
    emit_device_events(ctx.tenant_id, changes)
    return record_many(ctx.tenant_id, rows)


def emit_device_events(tenant_id: UUID, changes: list[tuple[Any, str | None]]) -> None:
    """device.created / device.status_changed for [(device, status before)] (None: a new device)."""
    out = []
    for device, before in changes:
        after = getattr(device.status, "value", device.status)
        if before is None:
            out.append(("device.created", {"device_id": device.id, "site_id": getattr(device, "site_id", None),
                                           "name": getattr(device, "name", None), "status": after}))
        elif before != after:
            out.append(("device.status_changed", {"device_id": device.id, "site_id": getattr(device, "site_id", None),
                                                  "from": before, "to": after}))
    emit_events(tenant_id, out)


def member_signed_in(ctx: TenantContext) -> None:
    record(ctx.tenant_id, MEMBER_SIGNIN, {"user_id": str(ctx.user_id)}, actor=ctx.user_id)


def agent_task_finished(tenant_id: UUID, *, task_id: Any, device_id: Any, command: str, status: str,
                        exit_code: int | None = None, actor: UUID | None = None,
                        occurred_at: datetime | None = None) -> None:
    """For the agents area (issue 15): one event per task outcome (done, failed, expired, ...)."""
    record(tenant_id, AGENT_TASK, {"task_id": str(task_id), "device_id": str(device_id), "command": command,
                                   "status": status, "exit_code": exit_code},
           occurred_at, actor, name=status, source="agent", source_id=str(task_id))
    emit_event(tenant_id, "agent.task_finished", {"task_id": task_id, "device_id": device_id, "command": command,
                                                  "status": status, "exit_code": exit_code}, occurred_at)


# --- Custom events (POST /api/v1/events) ------------------------------------------------------

@dataclass
class FieldError:
    pointer: str  # JSON pointer into the request body, e.g. "/3/type"
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "detail": self.message}


@dataclass
class CustomResult:
    recorded: int = 0
    errors: list[FieldError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _parse_time(value: Any, now: datetime) -> tuple[datetime | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, str):
        return None, "occurred_at must be an ISO 8601 date and time with a time zone."
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None, "occurred_at must be an ISO 8601 date and time with a time zone."
    if at.tzinfo is None:
        return None, "occurred_at needs a time zone (e.g. 2026-11-30T12:00:00Z)."
    if at < now - PAST_WINDOW or at > now + FUTURE_WINDOW:
        return None, (f"occurred_at must be within the last {PAST_WINDOW.days} days "
                      f"and at most {int(FUTURE_WINDOW.total_seconds() // 60)} minutes ahead.")
    return at, None


def validate_custom(events: Any, now: datetime | None = None) -> tuple[list[dict[str, Any]], list[FieldError]]:
    """Rows ready for record_many, or every error of the batch (then no row at all)."""
    now = now or datetime.now(timezone.utc)
    if not isinstance(events, list):
        return [], [FieldError("", "Send a JSON array of events.")]
    if not events:
        return [], [FieldError("", "The batch is empty: send 1 to 1,000 events.")]
    if len(events) > BATCH_MAX:
        return [], [FieldError("", f"A batch holds at most {BATCH_MAX:,} events; this one has {len(events):,}. "
                                   "Split it into several requests.")]
    rows, errors = [], []
    for i, item in enumerate(events):
        at = f"/{i}"
        if not isinstance(item, dict):
            errors.append(FieldError(at, "Each event is a JSON object."))
            continue
        for key in sorted(set(item) - CUSTOM_FIELDS):
            errors.append(FieldError(f"{at}/{key}", f"Unknown field; an event has {', '.join(sorted(CUSTOM_FIELDS))}."))
        kind = item.get("type")
        if not isinstance(kind, str) or not kind:
            errors.append(FieldError(f"{at}/type", "Give the event a type, e.g. \"door.opened\"."))
        elif len(kind) > TYPE_MAX or not TYPE_PATTERN.fullmatch(kind):
            errors.append(FieldError(f"{at}/type", f"“{kind[:TYPE_MAX]}” is not a valid type: lower-case letters, digits "
                                                   "and _, in up to four dot-separated parts, starting with a letter "
                                                   f"(at most {TYPE_MAX} characters)."))
        elif kind.split(".", 1)[0] in RESERVED:
            errors.append(FieldError(f"{at}/type", f"Types starting with “{kind.split('.', 1)[0]}.” are the portal's own."))
        props = item.get("properties", {})
        if not isinstance(props, dict):
            errors.append(FieldError(f"{at}/properties", "properties must be a JSON object."))
        elif len(json.dumps(props, separators=(",", ":")).encode()) > PROPERTIES_MAX_BYTES:
            errors.append(FieldError(f"{at}/properties", f"properties must be at most {PROPERTIES_MAX_BYTES:,} bytes of JSON."))
        when, problem = _parse_time(item.get("occurred_at"), now)
        if problem:
            errors.append(FieldError(f"{at}/occurred_at", problem))
        for key in ("name", "source_id"):
            value = item.get(key)
            if value is not None and (not isinstance(value, str) or len(value) > TEXT_MAX):
                errors.append(FieldError(f"{at}/{key}", f"{key} must be text of at most {TEXT_MAX} characters."))
        if not errors:
            rows.append((kind, props, when or now, item.get("name"), item.get("source_id")))
    if errors:
        return [], errors
    return [{"kind": k, "props": p, "when": w, "name": n, "source_id": s} for k, p, w, n, s in rows], []


def record_custom(ctx: TenantContext, events: Any, *, source: str = "api") -> CustomResult:
    """A batch of up to 1,000 custom events from a machine (or a person, on the analytics page),
    all or none: any invalid event refuses the batch with every field error."""
    rows, errors = validate_custom(events)
    if errors:
        return CustomResult(errors=errors)
    count = record_many(ctx.tenant_id, [event(r["kind"], r["props"], r["when"], ctx.user_id, name=r["name"],
                                              source=source, source_id=r["source_id"]) for r in rows])
    return CustomResult(recorded=count)
