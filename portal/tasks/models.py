"""Tasks (work items) at a tenant's sites and devices, and their comments.

A task may name a site, and a device of that site: the composite foreign key
(tenant_id, site_id, device_id) -> devices (tenant_id, site_id, id) makes "a device of another
site" impossible in the database, and moving the device carries its tasks along (ON UPDATE
CASCADE). Its due date is a calendar date in the site's time zone (the tenant's without a site).
"""
from __future__ import annotations

import enum
from datetime import date, datetime
from uuid import UUID

from sqlalchemy import (
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Timestamps, db, pg_enum, uuid_pk


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")

    @property
    def is_active(self) -> bool:
        """Still to be worked on (counts as overdue past its date)."""
        return self in ACTIVE_STATUSES


ACTIVE_STATUSES = (TaskStatus.OPEN, TaskStatus.IN_PROGRESS, TaskStatus.BLOCKED)


class TaskPriority(enum.StrEnum):
    # Declaration order is the PostgreSQL enum's order: comparisons and sorts follow it.
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
COMMENT_MAX = 5_000
# "No due date" sorts after every date (keyset pages without NULL special cases).
NO_DUE = date(9999, 12, 31)


class Task(Timestamps, db.Model):
    __tablename__ = "tasks"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "site_id"], ["sites.tenant_id", "sites.id"]),
        # The device is one of the task's site: the database refuses anything else. Devices are
        # only ever deleted with their tenant (purge), which takes their tasks along.
        ForeignKeyConstraint(["tenant_id", "site_id", "device_id"], ["devices.tenant_id", "devices.site_id", "devices.id"],
                             onupdate="CASCADE", ondelete="CASCADE"),
        CheckConstraint("device_id IS NULL OR site_id IS NOT NULL", name="device_needs_site"),
        CheckConstraint("(status = 'done') = (completed_at IS NOT NULL)", name="completed_when_done"),
        CheckConstraint(f"char_length(btrim(title)) BETWEEN 1 AND {TITLE_MAX}", name="title_length"),
        CheckConstraint(f"char_length(description) <= {DESCRIPTION_MAX}", name="description_length"),
        # Keyset pages of the list: one index per sort, tenant first.
        Index("ix_tasks_tenant_due_key", "tenant_id", "due_key", "id"),
        Index("ix_tasks_tenant_priority_due_key", "tenant_id", text("priority DESC"), "due_key", "id"),
        Index("ix_tasks_tenant_site_status", "tenant_id", "site_id", "status"),
        Index("ix_tasks_tenant_device", "tenant_id", "device_id", postgresql_where=text("device_id IS NOT NULL")),
        Index("ix_tasks_tenant_assignee_status", "tenant_id", "assignee_id", "status"),
        Index("ix_tasks_tenant_created_by", "tenant_id", "created_by"),
        # "My tasks" across tenants (portal_my_tasks) starts from the assignee.
        Index("ix_tasks_assignee_status", "assignee_id", "status"),
        Index("ix_tasks_search", "search", postgresql_using="gin"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    description: Mapped[str] = mapped_column(Text, server_default="")
    status: Mapped[TaskStatus] = mapped_column(pg_enum(TaskStatus, "task_status"), server_default="open")
    priority: Mapped[TaskPriority] = mapped_column(pg_enum(TaskPriority, "task_priority"), server_default="medium")
    due_on: Mapped[date | None] = mapped_column(Date)
    site_id: Mapped[UUID | None]
    device_id: Mapped[UUID | None]
    # People are users (a removed member's tasks keep naming them; pages say they left).
    assignee_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The daily scan's memory: the due date each notice was sent for (once per task and date).
    due_soon_noticed_for: Mapped[date | None] = mapped_column(Date)
    overdue_noticed_for: Mapped[date | None] = mapped_column(Date)
    due_key: Mapped[date] = mapped_column(Date, Computed("COALESCE(due_on, '9999-12-31'::date)", persisted=True))
    search: Mapped[str] = mapped_column(TSVECTOR, Computed("to_tsvector('simple'::regconfig, (title)::text)",
                                                           persisted=True))


class TaskComment(db.Model):
    __tablename__ = "task_comments"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "task_id"], ["tasks.tenant_id", "tasks.id"], ondelete="CASCADE"),
        CheckConstraint(f"char_length(btrim(body)) BETWEEN 1 AND {COMMENT_MAX}", name="body_length"),
        Index("ix_task_comments_tenant_task_created", "tenant_id", "task_id", "created_at"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    task_id: Mapped[UUID]
    author_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
