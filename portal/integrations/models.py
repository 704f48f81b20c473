"""Integrations (seed 002): one row per configured connection, its log, and the webhook ids an
inbound integration has accepted. Credentials are sealed with the tenant's data key
(portal.keys) with the row as associated data: a ciphertext copied to another row does not open."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (Boolean, CheckConstraint, DateTime, ForeignKey, ForeignKeyConstraint, Index, Integer,
                        LargeBinary, String, Text, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Timestamps, db, jsonb, pg_enum, uuid_pk


class IntegrationStatus(enum.StrEnum):
    PENDING = "pending"     # created, nothing delivered or synced yet
    ACTIVE = "active"       # the last delivery or sync worked
    ERROR = "error"         # the last one failed (retries go on)
    DISABLED = "disabled"   # turned off by a person, or by the circuit breaker


class Integration(Timestamps, db.Model):
    __tablename__ = "integrations"
    __table_args__ = (
        Index("ix_integrations_tenant_status", "tenant_id", "status"),
        Index("ix_integrations_tenant_provider", "tenant_id", "provider"),
        Index("ix_integrations_id", "id"),  # portal_integration_inbound: by the id in the URL alone
        Index("ix_integrations_due", "next_sync_at", postgresql_where=text("provider = 'json_source' AND enabled")),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))
    provider: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = jsonb()
    credentials: Mapped[bytes | None] = mapped_column(LargeBinary)  # sealed JSON object; never shown
    status: Mapped[IntegrationStatus] = mapped_column(pg_enum(IntegrationStatus, "integration_status"),
                                                      server_default="pending")
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sync_status: Mapped[str | None] = mapped_column(String(32))
    sync_error: Mapped[str | None] = mapped_column(Text)
    # JSON sources: the URL the next sync starts from (the page after the last one kept).
    sync_cursor: Mapped[str | None] = mapped_column(Text)
    next_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The circuit breaker: failed attempts in a row, and since when.
    failures_in_row: Mapped[int] = mapped_column(Integer, server_default="0")
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class LogEntry(db.Model):
    """One delivery (with its retries), test, sync run or inbound batch. Heads and bodies are
    stored redacted (credentials replaced) and truncated."""

    __tablename__ = "integration_log"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "integration_id"], ["integrations.tenant_id", "integrations.id"],
                             ondelete="CASCADE"),
        CheckConstraint("kind IN ('delivery', 'test', 'sync', 'inbound')", name="kind"),
        CheckConstraint("state IN ('pending', 'retrying', 'succeeded', 'failed')", name="state"),
        Index("ix_integration_log_tenant_integration_created", "tenant_id", "integration_id", "created_at", "id"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    integration_id: Mapped[UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16))
    event_type: Mapped[str | None] = mapped_column(String(100))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # the event body, kept for replays
    state: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    request: Mapped[dict[str, Any]] = jsonb()
    response: Mapped[dict[str, Any]] = jsonb()
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    replay_of: Mapped[UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def message_id(self) -> str:
        """The Standard Webhooks `webhook-id`: the same for every attempt and replay of a message."""
        return "msg_" + (self.replay_of or self.id).hex


class InboundId(db.Model):
    __tablename__ = "integration_inbound_ids"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "integration_id"], ["integrations.tenant_id", "integrations.id"],
                             ondelete="CASCADE"),
        Index("ix_integration_inbound_ids_tenant_received", "tenant_id", "received_at"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    integration_id: Mapped[UUID] = mapped_column(primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))
