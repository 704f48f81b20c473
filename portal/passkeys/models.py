"""Passkeys (WebAuthn credentials, seed 004's Authenticators) and their server-side challenges.
Global tables: a passkey belongs to a person, not to an organization (like user_sessions), and
is read and written only as that person (RLS `user_own`, migration 0028)."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, LargeBinary, String, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Timestamps, db, uuid_pk

SINGLE_DEVICE, MULTI_DEVICE = "single_device", "multi_device"
DEVICE_TYPES = {SINGLE_DEVICE: "This device only", MULTI_DEVICE: "Synced"}


class Authenticator(Timestamps, db.Model):
    """One passkey of a user: the credential's id and public key (COSE), the authenticator's
    signature counter, what it said about itself at registration, and the person's name for it."""

    __tablename__ = "authenticators"
    __table_args__ = (
        Index("ix_authenticators_user", "user_id", "created_at"),
        CheckConstraint("device_type IN ('single_device', 'multi_device')", name="device_type_known"),
        CheckConstraint("counter >= 0", name="counter_not_negative"),
    )

    id: Mapped[UUID] = uuid_pk()
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    credential_public_key: Mapped[bytes] = mapped_column(LargeBinary)
    counter: Mapped[int] = mapped_column(BigInteger, server_default="0")
    transports: Mapped[list[str]] = mapped_column(ARRAY(String(20)), server_default="{}")
    aaguid: Mapped[str] = mapped_column(String(36), server_default="00000000-0000-0000-0000-000000000000")
    device_type: Mapped[str] = mapped_column(String(20))
    backed_up: Mapped[bool] = mapped_column(Boolean)
    friendly_name: Mapped[str] = mapped_column(String(100))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def device_label(self) -> str:
        return DEVICE_TYPES.get(self.device_type, self.device_type)


class WebAuthnChallenge(db.Model):
    """A challenge handed to a browser for one ceremony: single use (used_at), five minutes,
    found again by its value (32 random bytes) in the browser's answer. user_id is the account
    whose ceremony it is (registration, second factor, re-authentication), NULL for a sign-in
    with a discoverable credential (nobody is known yet)."""

    __tablename__ = "webauthn_challenges"
    __table_args__ = (
        Index("ix_webauthn_challenges_expires", "expires_at"),
        CheckConstraint("purpose IN ('register', 'signin', 'second_factor', 'reauth')", name="purpose_known"),
    )

    id: Mapped[UUID] = uuid_pk()
    purpose: Mapped[str] = mapped_column(String(20))
    challenge: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    user_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
