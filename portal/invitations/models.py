from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from sqlalchemy import (ARRAY, CheckConstraint, DateTime, ForeignKey, ForeignKeyConstraint, Index, Integer,
                        LargeBinary, String, UniqueConstraint, func, text)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import Timestamps, db, pg_enum, uuid_pk
from ..tenancy.models import ONE_ROLE, MembershipRole, TenantRole


class InvitationStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Invitation(Timestamps, db.Model):
    """An emailed invitation. Only the SHA-256 of its token is stored."""

    __tablename__ = "tenant_invitations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "token_hash"),
        CheckConstraint("expires_at > created_at", name="expires_after_created"),
        CheckConstraint("octet_length(token_hash) = 32", name="token_hash_sha256"),
        CheckConstraint(ONE_ROLE, name="one_role"),
        ForeignKeyConstraint(["tenant_id", "custom_role_id"], ["tenant_roles.tenant_id", "tenant_roles.id"],
                             name="fk_tenant_invitations_custom_role"),
        Index("ix_tenant_invitations_tenant_custom_role", "tenant_id", "custom_role_id"),
        Index("ix_tenant_invitations_tenant_status", "tenant_id", "status", "created_at"),
        # One pending invitation per address and tenant.
        Index("uq_tenant_invitations_pending_email", "tenant_id", func.lower(text("email")), unique=True,
              postgresql_where=text("status = 'pending'")),
        # Acceptance finds an invitation by token before the tenant is known.
        Index("ix_tenant_invitations_token_hash", "token_hash"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[MembershipRole | None] = mapped_column(pg_enum(MembershipRole, "membership_role"))
    custom_role_id: Mapped[UUID | None] = mapped_column()
    token_hash: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[InvitationStatus] = mapped_column(pg_enum(InvitationStatus, "invitation_status"),
                                                     server_default="pending")
    invited_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    site_ids: Mapped[list[UUID]] = mapped_column(ARRAY(PG_UUID(as_uuid=True)), server_default=text("'{}'"))
    # Further custom roles given on acceptance (tenancy.models.UserRole); one deleted since is skipped.
    extra_role_ids: Mapped[list[UUID]] = mapped_column(ARRAY(PG_UUID(as_uuid=True)), server_default=text("'{}'"),
                                                       default=list)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    last_sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    send_count: Mapped[int] = mapped_column(Integer, server_default="1")
    declined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    def effective_status(self, now: datetime) -> InvitationStatus:
        """Pending past its expiry reads as expired (no job needed to flip it)."""
        if self.status == InvitationStatus.PENDING and self.expires_at <= now:
            return InvitationStatus.EXPIRED
        return self.status

    custom_role: Mapped[TenantRole | None] = relationship(
        viewonly=True, lazy="select",
        primaryjoin="and_(Invitation.tenant_id == TenantRole.tenant_id, Invitation.custom_role_id == TenantRole.id)")
