"""Per-user notifications and preferences. Not tenant tables: a row belongs to one user
(row-level security on app.user_id, migration 0012); `about_tenant_id` names the tenant an
event belongs to, when it does (a sign-in does not), and goes with the tenant when it is purged."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db, jsonb, uuid_pk
from .kinds import Channel

CHANNELS_SQL = ", ".join(f"'{c.value}'" for c in Channel)


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (
        # The list (newest first, keyset on created_at, id) and the bell's unread count.
        Index("ix_notifications_user_created", "user_id", "created_at", "id"),
        Index("ix_notifications_unread", "user_id", postgresql_where=text("read_at IS NULL")),
        Index("ix_notifications_about_tenant", "about_tenant_id"),  # the tenant purge's cascade
    )

    id: Mapped[UUID] = uuid_pk()
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    about_tenant_id: Mapped[UUID | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50))
    params: Mapped[dict[str, Any]] = jsonb()
    link: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NotificationPreference(db.Model):
    """How one user hears of one kind; no row means the kind's default."""

    __tablename__ = "notification_preferences"
    __table_args__ = (CheckConstraint(f"channel IN ({CHANNELS_SQL})", name="channel_known"),)

    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(50), primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
