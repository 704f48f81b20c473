"""Analytics events (seed 002): a tenant's time series, natively partitioned by month.

The table is `PARTITION BY RANGE (occurred_at)` (migration 0015); each month is a partition
`analytics_events_pYYYY_MM` made ahead of time by `portal_analytics_partitions(...)` (a narrow
SECURITY DEFINER function, called by the migration and the `analytics.partitions` job), and a
DEFAULT partition `analytics_events_default` catches a row for which no month exists yet, so
recording never fails a request. Seed 002's `timestamp` is `occurred_at` here, `eventType` is
`event_type` (the dotted name charts group by, e.g. `device.status`), `eventName` an optional
label within it.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db, jsonb

PARTITION_PREFIX = "analytics_events_p"
DEFAULT_PARTITION = "analytics_events_default"


class AnalyticsEvent(db.Model):
    __tablename__ = "analytics_events"
    __table_args__ = (
        # The primary key (tenant_id, occurred_at, id) is also seed 002's (tenantId, timestamp) index.
        Index("ix_analytics_events_tenant_type", "tenant_id", "event_type", "occurred_at"),
        Index("ix_analytics_events_tenant_source", "tenant_id", "source_id",
              postgresql_where=text("source_id IS NOT NULL")),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    # The partition key must be part of the primary key.
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True,
                                                  server_default=func.now())
    id: Mapped[UUID] = mapped_column(primary_key=True, server_default=text("gen_random_uuid()"))
    event_type: Mapped[str] = mapped_column(String(100))
    event_name: Mapped[str | None] = mapped_column(String(200))
    properties: Mapped[dict[str, Any]] = jsonb()
    source: Mapped[str] = mapped_column(String(32), server_default="portal")
    source_id: Mapped[str | None] = mapped_column(String(200))
    # Who caused it (a user, or an API client's principal); no foreign key: events outlive people.
    actor_id: Mapped[UUID | None] = mapped_column()


class AnalyticsDaily(db.Model):
    """Events per tenant, UTC day and type, and that day's net change in devices online (from
    `device.status` events written by the portal): kept by the statement that inserts the events
    (events.record_many), read by the dashboard's charts."""

    __tablename__ = "analytics_daily"

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, server_default="0")
    online_delta: Mapped[int] = mapped_column(Integer, server_default="0")
