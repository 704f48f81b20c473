from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from sqlalchemy import CheckConstraint, DateTime, Index, Integer, LargeBinary, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db, pg_enum, uuid_pk


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Failure(enum.StrEnum):
    """Why a message failed for good."""
    UNBUILDABLE = "unbuildable"  # it cannot be written as an email (a header, an undecryptable body)
    REFUSED = "refused"          # the SMTP server answered 5xx
    EXHAUSTED = "exhausted"      # the server could not take it, MAX_ATTEMPTS times

    @property
    def text(self) -> str:
        return {Failure.UNBUILDABLE: "the email could not be written (a value in it cannot go into an email)",
                Failure.REFUSED: "the mail server refused it",
                Failure.EXHAUSTED: "the mail server could not be reached, after every retry"}[self]


FAILURES_SQL = ", ".join(f"'{f.value}'" for f in Failure)


class OutboxMessage(db.Model):
    """An email written in the transaction that caused it, delivered after commit.

    Global (not tenant-scoped): the delivery worker serves every tenant and
    account emails have none; `about_tenant_id` only names the tenant a message concerns. The body is encrypted with a key derived from
    SECRET_KEY (it may carry a token link) and erased once delivered.
    """

    __tablename__ = "email_outbox"
    __table_args__ = (
        Index("ix_email_outbox_due", "status", "next_attempt_at"),
        Index("ix_email_outbox_created", "created_at"),
        CheckConstraint(f"failure IN ({FAILURES_SQL})", name="failure_known"),
        # The notice on what a message was about (an invitation row), and /metrics' failure counts.
        Index("ix_email_outbox_about", "about_id", postgresql_where=text("about_id IS NOT NULL")),
        Index("ix_email_outbox_failure", "failure", postgresql_where=text("failure IS NOT NULL")),
    )

    id: Mapped[UUID] = uuid_pk()
    kind: Mapped[str] = mapped_column(String(50))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[OutboxStatus] = mapped_column(pg_enum(OutboxStatus, "outbox_status"), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Set when it fails for good; kept if an operator retries it (/metrics counts messages that failed).
    failure: Mapped[str | None] = mapped_column(String(20))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who and what it is for, so a failure reaches the sender and the row it concerns (the area of
    # `kind` registers what to do: outbox.failure_hooks). Ids, not foreign keys: the outbox is a log
    # that outlives what it names (no cascade scans on a tenant or user delete).
    about_tenant_id: Mapped[UUID | None] = mapped_column()
    about_id: Mapped[UUID | None] = mapped_column()
    sender_id: Mapped[UUID | None] = mapped_column()
