"""Who belongs to a tenant and what they may do there: memberships, the permission catalogue,
the system roles every tenant shares and each tenant's custom roles (seeds 000, 003, 004)."""
from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from sqlalchemy import (CheckConstraint, DateTime, ForeignKey, ForeignKeyConstraint, Index, Integer, String,
                        UniqueConstraint, func, text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import User
from ..extensions import Timestamps, db, pg_enum, uuid_pk


class MembershipRole(enum.StrEnum):
    """The system roles, shared by every tenant."""
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class MembershipStatus(enum.StrEnum):
    ACTIVE = "active"
    INVITED = "invited"
    SUSPENDED = "suspended"


class PermissionRecord(db.Model):
    """The catalogue as data; `tenancy.permissions.Permission` is its source of truth."""

    __tablename__ = "permissions"
    __table_args__ = (CheckConstraint("name = resource || ':' || action", name="name_is_resource_action"),)

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(300))
    position: Mapped[int] = mapped_column(Integer)


class SystemRole(db.Model):
    """owner, admin, member, viewer: global rows, read-only for tenants."""

    __tablename__ = "roles"

    key: Mapped[MembershipRole] = mapped_column(pg_enum(MembershipRole, "membership_role"), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(String(300))
    position: Mapped[int] = mapped_column(Integer)


class SystemRolePermission(db.Model):
    __tablename__ = "role_permissions"

    role: Mapped[MembershipRole] = mapped_column(
        pg_enum(MembershipRole, "membership_role"), ForeignKey("roles.key", ondelete="CASCADE"), primary_key=True)
    permission: Mapped[str] = mapped_column(ForeignKey("permissions.name", ondelete="CASCADE"), primary_key=True)


class TenantRole(Timestamps, db.Model):
    """A tenant's own role. Tenant rows: forced RLS, tenant_id in every key."""

    __tablename__ = "tenant_roles"
    __table_args__ = (
        Index("uq_tenant_roles_name", "tenant_id", func.lower(text("name")), unique=True),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(String(300), server_default="")
    created_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    grants: Mapped[list[TenantRolePermission]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="selectin",
        primaryjoin="and_(TenantRole.tenant_id == TenantRolePermission.tenant_id, "
                    "TenantRole.id == TenantRolePermission.role_id)")


class TenantRolePermission(db.Model):
    __tablename__ = "tenant_role_permissions"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "role_id"], ["tenant_roles.tenant_id", "tenant_roles.id"],
                             ondelete="CASCADE"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    role_id: Mapped[UUID] = mapped_column(primary_key=True)
    permission: Mapped[str] = mapped_column(ForeignKey("permissions.name", ondelete="CASCADE"), primary_key=True)


class UserRole(db.Model):
    """A further custom role a member holds besides their base role (seed 003's user_roles).
    System roles nest, so a member holds at most one (the base role); permissions are the union."""

    __tablename__ = "user_roles"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "membership_id"], ["user_tenant_associations.tenant_id",
                                                              "user_tenant_associations.id"],
                             name="fk_user_roles_membership", ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "role_id"], ["tenant_roles.tenant_id", "tenant_roles.id"],
                             name="fk_user_roles_role", ondelete="CASCADE"),
        Index("ix_user_roles_tenant_role", "tenant_id", "role_id"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    membership_id: Mapped[UUID] = mapped_column(primary_key=True)
    role_id: Mapped[UUID] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# A membership or invitation holds exactly one base role: a system role, or a custom role of the
# same tenant (the foreign key includes tenant_id, so another tenant's role cannot be named).
ONE_ROLE = "num_nonnulls(role, custom_role_id) = 1"


class Membership(Timestamps, db.Model):
    """A user's role in one tenant (seed 000's user_tenant_associations)."""

    __tablename__ = "user_tenant_associations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id"),
        CheckConstraint("accepted_at IS NULL OR invited_at IS NULL OR accepted_at >= invited_at",
                        name="accepted_after_invited"),
        CheckConstraint(ONE_ROLE, name="one_role"),
        ForeignKeyConstraint(["tenant_id", "custom_role_id"], ["tenant_roles.tenant_id", "tenant_roles.id"],
                             name="fk_user_tenant_associations_custom_role"),
        Index("ix_user_tenant_associations_tenant_role", "tenant_id", "role", "status"),
        Index("ix_user_tenant_associations_tenant_custom_role", "tenant_id", "custom_role_id"),
        # The tenant switcher reads a user's own memberships across tenants.
        Index("ix_user_tenant_associations_user", "user_id", "status"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[MembershipRole | None] = mapped_column(pg_enum(MembershipRole, "membership_role"))
    custom_role_id: Mapped[UUID | None] = mapped_column()
    status: Mapped[MembershipStatus] = mapped_column(pg_enum(MembershipStatus, "membership_status"),
                                                     server_default="active")
    invited_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    invited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_active_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")
    custom_role: Mapped[TenantRole | None] = relationship(
        viewonly=True, lazy="select",
        primaryjoin="and_(Membership.tenant_id == TenantRole.tenant_id, "
                    "Membership.custom_role_id == TenantRole.id)")
