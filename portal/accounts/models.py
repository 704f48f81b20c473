from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from flask_login import UserMixin
from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Index, LargeBinary, String, UniqueConstraint, func,
                        text)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Timestamps, db, jsonb, pg_enum, uuid_pk


class UserType(enum.StrEnum):
    SYSTEM_ADMIN = "system_admin"
    TENANT_ADMIN = "tenant_admin"
    REGULAR = "regular"
    SERVICE_ACCOUNT = "service_account"
    GUEST = "guest"


class User(UserMixin, Timestamps, db.Model):
    """A person or service. Global: one account, memberships in many tenants."""

    __tablename__ = "users"
    __table_args__ = (
        # Case-insensitive uniqueness without citext (not in the embedded server).
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        Index("ix_users_metadata", "metadata", postgresql_using="gin"),
        UniqueConstraint("oidc_issuer", "oidc_subject"),
    )

    id: Mapped[UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), server_default="")
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

    @property
    def has_mfa(self) -> bool:
        return self.totp_enabled_at is not None

    @property
    def is_system_admin(self) -> bool:
        return self.user_type == UserType.SYSTEM_ADMIN

    @property
    def display_name(self) -> str:
        return self.name or self.email
