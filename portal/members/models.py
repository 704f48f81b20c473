from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import User
from ..extensions import Timestamps, db, pg_enum, uuid_pk


class MembershipRole(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class MembershipStatus(enum.StrEnum):
    ACTIVE = "active"
    INVITED = "invited"
    SUSPENDED = "suspended"


class Membership(Timestamps, db.Model):
    """A user's role in one tenant (seed 000's user_tenant_associations)."""

    __tablename__ = "user_tenant_associations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id"),
        CheckConstraint("accepted_at IS NULL OR invited_at IS NULL OR accepted_at >= invited_at",
                        name="accepted_after_invited"),
        Index("ix_user_tenant_associations_tenant_role", "tenant_id", "role", "status"),
        # The tenant switcher reads a user's own memberships across tenants.
        Index("ix_user_tenant_associations_user", "user_id", "status"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[MembershipRole] = mapped_column(pg_enum(MembershipRole, "membership_role"), server_default="member")
    status: Mapped[MembershipStatus] = mapped_column(pg_enum(MembershipStatus, "membership_status"),
                                                     server_default="active")
    invited_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    invited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_active_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")
