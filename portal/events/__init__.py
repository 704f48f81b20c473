"""The portal's event catalogue and its one door: `emit`.

A service that makes something happen (a device changes status, a task is completed, a member
joins) calls `emit(tenant_id, type, data)` once, inside its own transaction. The catalogue
(`catalogue.py`) names every type, says what it means and gives its payload's JSON schema; the
webhooks, the OpenAPI document and the analytics and audit pages read the same table.

Subscribers are registered by the areas that act on events (integrations queues one delivery
per subscribed webhook endpoint, as rows and jobs of the same transaction: the outbox pattern,
so nothing is sent when the change rolls back). This area imports no other, so any area may emit.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from .catalogue import CATALOGUE, EventType

__all__ = ["CATALOGUE", "EventType", "Event", "emit", "emit_many", "subscribers"]


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any]
    occurred_at: datetime


# Called with (tenant_id, [Event]) in the emitting transaction; registered at start-up.
subscribers: list[Callable[[UUID, list[Event]], None]] = []


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(getattr(value, "value", value))  # UUIDs, dates, enums


def emit(tenant_id: UUID, type_: str, data: dict[str, Any], occurred_at: datetime | None = None) -> None:
    emit_many(tenant_id, [(type_, data)], occurred_at)


def emit_many(tenant_id: UUID, events: list[tuple[str, dict[str, Any]]], occurred_at: datetime | None = None) -> None:
    """Events of one tenant, in the order they happened. An unknown type is a programming error."""
    if not events or not subscribers:
        return
    at = occurred_at or datetime.now(timezone.utc)
    batch = []
    for type_, data in events:
        if type_ not in CATALOGUE:
            raise KeyError(f"{type_!r} is not in the event catalogue (portal/events/catalogue.py)")
        batch.append(Event(type_, _plain(data), at))
    for subscriber in subscribers:
        subscriber(tenant_id, batch)
