from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from flask_login import UserMixin
from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint,
                        func, text)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Timestamps, db, jsonb, pg_enum, uuid_pk


class UserType(enum.StrEnum):
    SYSTEM_ADMIN = "system_admin"
    TENANT_ADMIN = "tenant_admin"
    REGULAR = "regular"
    SERVICE_ACCOUNT = "service_account"
    GUEST = "guest"


class UserStatus(enum.StrEnum):
    """An account's life (seed 004): `is_active` mirrors `status == active` (a trigger keeps the
    two in step, so SQL written against is_active keeps its meaning)."""
    ACTIVE = "active"
    SUSPENDED = "suspended"  # by a system admin, with a reason; reactivated by one
    DEACTIVATED = "deactivated"  # by the person: their deletion waits out its grace period
    DELETED = "deleted"  # personal data scrubbed; the row stays for the history that names it


class User(UserMixin, Timestamps, db.Model):
    """A person or service. Global: one account, memberships in many tenants."""

    __tablename__ = "users"
    __table_args__ = (
        # Case-insensitive uniqueness without citext (not in the embedded server).
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        Index("ix_users_metadata", "metadata", postgresql_using="gin"),
        UniqueConstraint("oidc_issuer", "oidc_subject"),
        Index("ix_users_deletion_due", "deletion_due_at", postgresql_where=text("deletion_due_at IS NOT NULL")),
    )

    id: Mapped[UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(String(320))
    # The display name the rest of the portal reads, derived from the two below (set_names).
    name: Mapped[str] = mapped_column(String(200), server_default="")
    given_name: Mapped[str] = mapped_column(String(100), server_default="")
    family_name: Mapped[str] = mapped_column(String(100), server_default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    user_type: Mapped[UserType] = mapped_column(pg_enum(UserType, "user_type"), server_default="regular")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    keycloak_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_tenant_id: Mapped[UUID | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"))
    created_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    meta: Mapped[dict[str, Any]] = jsonb("metadata")
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Two-factor: the TOTP secret is encrypted with a key derived from SECRET_KEY.
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)  # refuses a replayed code
    # Single sign-on: the provider's issuer and subject for this account.
    oidc_issuer: Mapped[str | None] = mapped_column(String(500))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    # The IANA zone the portal's times are shown in (portal/timezones.py checks it); NULL: not
    # chosen yet (the browser's is detected once by static/time.js).
    timezone: Mapped[str | None] = mapped_column(String(64))
    # A BCP 47 tag from accounts.lifecycle.LOCALES (how dates and numbers read); NULL: the browser's.
    locale: Mapped[str | None] = mapped_column(String(35))
    # Who, when and why of the last status change (seed 004's statusReason/statusChangedAt/By).
    status: Mapped[UserStatus] = mapped_column(pg_enum(UserStatus, "user_status"), server_default="active")
    status_reason: Mapped[str | None] = mapped_column(String(500))
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_changed_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Self-service deletion: asked for at, and scrubbed by the worker after (the grace period).
    deletion_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deletion_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    login_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # The avatar's content hash prefix (a cache-busting version for its URL); NULL: none.
    avatar_version: Mapped[str | None] = mapped_column(String(16))

    @property
    def has_mfa(self) -> bool:
        return self.totp_enabled_at is not None

    @property
    def is_system_admin(self) -> bool:
        return self.user_type == UserType.SYSTEM_ADMIN

    @property
    def display_name(self) -> str:
        if self.status == UserStatus.DELETED:
            return DELETED_USER
        return self.name or self.email


DELETED_USER = "Deleted user"


class UserAvatar(db.Model):
    """A person's picture, re-encoded by the portal (profile.avatar); read only by its route."""

    __tablename__ = "user_avatars"

    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    media_type: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AccountExport(db.Model):
    """A person's own data as a zip (profile.export), made by the worker; the emailed link's
    token is stored hashed and works for LINK_HOURS, for that person only."""

    __tablename__ = "account_exports"
    __table_args__ = (Index("ix_account_exports_user", "user_id", "created_at"),)

    id: Mapped[UUID] = uuid_pk()
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(10), server_default="queued")  # queued, running, done, failed
    token_hash: Mapped[bytes | None] = mapped_column(LargeBinary, unique=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
