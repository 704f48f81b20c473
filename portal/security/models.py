"""Account security records: server-side sessions, sign-in history, single-use account
tokens and two-factor backup codes. Global tables: they belong to a user, not a tenant, and a
transaction reads and writes only its own user's rows (RLS `user_own` on app.user_id, migration
0028; docs/isolation.md "Per-user tables")."""
from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Index, LargeBinary, String, func, text
from sqlalchemy.dialects.postgresql import INET
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db, jsonb, pg_enum, uuid_pk


class UserSession(db.Model):
    """One signed-in browser. The cookie carries a random id; only its SHA-256 is stored."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user", "user_id", "revoked_at"),)

    id: Mapped[UUID] = uuid_pk()
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reauth_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(500))


class LoginEvent(db.Model):
    """Every sign-in attempt: shown on the profile, counted for throttling."""

    __tablename__ = "login_events"
    __table_args__ = (
        Index("ix_login_events_user", "user_id", "created_at"),
        Index("ix_login_events_email", func.lower(text("email")), "created_at"),
    )

    id: Mapped[UUID] = uuid_pk()
    user_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    success: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(50))
    method: Mapped[str] = mapped_column(String(20), server_default="password")
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TokenPurpose(enum.StrEnum):
    RESET_PASSWORD = "reset_password"
    VERIFY_EMAIL = "verify_email"


class AccountToken(db.Model):
    """A single-use emailed link (password reset, email verification), stored as a hash."""

    __tablename__ = "account_tokens"
    __table_args__ = (Index("ix_account_tokens_user", "user_id", "purpose"),)

    id: Mapped[UUID] = uuid_pk()
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[TokenPurpose] = mapped_column(pg_enum(TokenPurpose, "account_token_purpose"))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    new_email: Mapped[str | None] = mapped_column(String(320))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BackupCode(db.Model):
    """A single-use two-factor backup code, stored as a keyed hash."""

    __tablename__ = "mfa_backup_codes"
    __table_args__ = (Index("ix_mfa_backup_codes_user", "user_id"),)

    id: Mapped[UUID] = uuid_pk()
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SecurityEvent(db.Model):
    """An account event that belongs to no tenant (seed 004's security audit log). Under RLS:
    the serving role reads a user's own rows, and all of them only for a system admin."""

    __tablename__ = "security_events"
    __table_args__ = (
        Index("ix_security_events_user", "user_id", "created_at"),
        Index("ix_security_events_created", "created_at", "id"),
        Index("ix_security_events_event", "event", "created_at"),
        CheckConstraint("severity IN ('info', 'warning', 'critical')", name="severity_known"),
    )
    # No RETURNING of server defaults: RLS refuses it for rows the writer may not read back.
    __mapper_args__ = {"eager_defaults": False}

    id: Mapped[UUID] = uuid_pk()
    user_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    email: Mapped[str] = mapped_column(String(320), server_default="")
    event: Mapped[str] = mapped_column(String(50))
    severity: Mapped[str] = mapped_column(String(10))
    details: Mapped[dict] = jsonb()
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(500))
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
