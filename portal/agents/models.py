"""Device agents: a credential per device, tasks queued for agents and their results."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (Boolean, CheckConstraint, DateTime, ForeignKey, ForeignKeyConstraint, Index, Integer, LargeBinary,
                        Text, UniqueConstraint, func, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db, jsonb, pg_enum, uuid_pk


class AgentCredential(db.Model):
    """A device's agent secret, stored as its SHA-256 only. At most one live credential per
    device; rotating revokes the old one and issues a new one."""

    __tablename__ = "agent_credentials"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "device_id"], ["devices.tenant_id", "devices.id"], ondelete="CASCADE"),
        UniqueConstraint("tenant_id", "secret_hash"),
        CheckConstraint("octet_length(secret_hash) = 32", name="secret_hash_sha256"),
        Index("uq_agent_credentials_live_device", "tenant_id", "device_id", unique=True,
              postgresql_where=text("revoked_at IS NULL")),
        # The agent's request finds its credential by hash before the tenant is known
        # (portal_agent_credential, migration 0014).
        Index("ix_agent_credentials_secret_hash", "secret_hash"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    device_id: Mapped[UUID]
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary)
    gateway: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Command(enum.StrEnum):
    REBOOT = "reboot"
    UPDATE_FIRMWARE = "update_firmware"
    COLLECT_DIAGNOSTICS = "collect_diagnostics"
    CUSTOM = "custom"


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (TaskStatus.QUEUED, TaskStatus.RUNNING)


class AgentTask(db.Model):
    __tablename__ = "agent_tasks"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "device_id"], ["devices.tenant_id", "devices.id"], ondelete="CASCADE"),
        CheckConstraint("expires_at > created_at", name="expires_after_created"),
        # The agent's claim: the oldest queued task of its device.
        Index("ix_agent_tasks_tenant_device_queue", "tenant_id", "device_id", "created_at",
              postgresql_where=text("status = 'queued'")),
        # The device page's list, newest first.
        Index("ix_agent_tasks_tenant_device_created", "tenant_id", "device_id", "created_at"),
        # The expiry job: unfinished tasks by deadline.
        Index("ix_agent_tasks_tenant_open_expires", "tenant_id", "expires_at",
              postgresql_where=text("status IN ('queued', 'running')")),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    device_id: Mapped[UUID]
    command: Mapped[Command] = mapped_column(pg_enum(Command, "agent_command"))
    parameters: Mapped[dict[str, Any]] = jsonb()
    status: Mapped[TaskStatus] = mapped_column(pg_enum(TaskStatus, "agent_task_status"), server_default="queued")
    created_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AgentResult(db.Model):
    """What the agent reported for a task: one result per task."""

    __tablename__ = "agent_results"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "task_id"], ["agent_tasks.tenant_id", "agent_tasks.id"],
                             ondelete="CASCADE"),
        UniqueConstraint("tenant_id", "task_id"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    task_id: Mapped[UUID]
    status: Mapped[TaskStatus] = mapped_column(pg_enum(TaskStatus, "agent_task_status"))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    log: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
