from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ARRAY, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Timestamps, db, jsonb, pg_enum, uuid_pk


SLUG_PATTERN = "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
SLUG = re.compile(SLUG_PATTERN)


class TenantType(enum.StrEnum):
    ENTERPRISE = "enterprise"
    STANDARD = "standard"
    STARTER = "starter"
    TRIAL = "trial"
    DEMO = "demo"


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    PENDING = "pending"
    ARCHIVED = "archived"
    PENDING_DELETION = "pending_deletion"


# Members use it fully; an archived tenant, or one waiting to be deleted, is read-only; a
# suspended one keeps members out
# with a page that says why (migration 0009's portal_tenant_readable says the same in SQL).
USABLE_STATUSES = (TenantStatus.ACTIVE, TenantStatus.PENDING)
READ_ONLY_STATUSES = (TenantStatus.ARCHIVED, TenantStatus.PENDING_DELETION)
READABLE_STATUSES = USABLE_STATUSES + READ_ONLY_STATUSES


class Plan(db.Model):
    """A plan's limits and features (seed 002): what a tenant gets unless it overrides them."""

    __tablename__ = "plans"
    __table_args__ = (
        CheckConstraint("max_users > 0 AND max_sites >= 0 AND max_devices >= 0 AND max_integrations >= 0",
                        name="limits_positive"),
        CheckConstraint("max_api_clients >= 0", name="max_api_clients_positive"),
    )

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    position: Mapped[int] = mapped_column(Integer)
    max_users: Mapped[int] = mapped_column(Integer)
    max_sites: Mapped[int] = mapped_column(Integer)
    max_devices: Mapped[int] = mapped_column(Integer)
    max_integrations: Mapped[int] = mapped_column(Integer)
    features: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default=text("'{}'"))
    # API clients have a limit of their own (migration 0019); max_integrations counts integrations.
    max_api_clients: Mapped[int] = mapped_column(Integer, server_default="0")
    # How long a tenant on this plan keeps its analytics events (migration 0015).
    analytics_retention_days: Mapped[int] = mapped_column(Integer, server_default="30")


LIMITS = ("max_users", "max_sites", "max_devices", "max_integrations", "max_api_clients")


class SlugRedirect(db.Model):
    """A renamed tenant's old address: it leads its members to the new one for a while, and
    nobody else may take it meanwhile (a tenant row: forced RLS)."""

    __tablename__ = "tenant_slug_redirects"
    __table_args__ = (Index("ix_tenant_slug_redirects_old_slug", "old_slug"),)

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    old_slug: Mapped[str] = mapped_column(String(63), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TenantTombstone(db.Model):
    """What remains of a purged tenant: for the system console, and its slug stays reserved."""

    __tablename__ = "tenant_tombstones"

    id: Mapped[UUID] = mapped_column(primary_key=True)  # the tenant's own id
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    requested_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    purged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))


class Tenant(Timestamps, db.Model):
    """An organization. Global (not tenant-scoped): it is the tenant itself."""

    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint(f"slug ~ '{SLUG_PATTERN}'", name="slug_format"),
        CheckConstraint("max_users > 0", name="max_users_positive"),
        CheckConstraint("max_sites >= 0 AND max_devices >= 0 AND max_integrations >= 0", name="limits_positive"),
        CheckConstraint("max_api_clients >= 0", name="max_api_clients_positive"),
        Index("ix_tenants_plan", "plan"),
        Index("ix_tenants_status", "status"),
        Index("ix_tenants_settings", "settings", postgresql_using="gin"),
        Index("ix_tenants_metadata", "metadata", postgresql_using="gin"),
    )

    id: Mapped[UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    type: Mapped[TenantType] = mapped_column(pg_enum(TenantType, "tenant_type"), server_default="standard")
    status: Mapped[TenantStatus] = mapped_column(pg_enum(TenantStatus, "tenant_status"), server_default="active")
    domain: Mapped[str | None] = mapped_column(String(253), unique=True)
    keycloak_group_id: Mapped[str | None] = mapped_column(String(255))
    # The plan's limits, copied when the plan is set; a system admin may override them per tenant.
    plan: Mapped[str] = mapped_column(ForeignKey("plans.key"), server_default="free")
    max_users: Mapped[int] = mapped_column(Integer, server_default="25")
    max_sites: Mapped[int] = mapped_column(Integer, server_default="2")
    max_devices: Mapped[int] = mapped_column(Integer, server_default="50")
    max_integrations: Mapped[int] = mapped_column(Integer, server_default="0")
    max_api_clients: Mapped[int] = mapped_column(Integer, server_default="0")
    # Features this tenant has on top of its plan's (seed 002's tenants.features), set in the console.
    features: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default=text("'{}'"))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    status_reason: Mapped[str | None] = mapped_column(String(500))  # shown to members while suspended
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Deletion (seed 004): asked by an owner, purged once purge_after has passed.
    deletion_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deletion_requested_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL", use_alter=True))
    purge_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    settings: Mapped[dict[str, Any]] = jsonb()
    # `metadata` is reserved by SQLAlchemy's declarative base, hence `meta`.
    meta: Mapped[dict[str, Any]] = jsonb("metadata")

    @hybrid_property
    def is_usable(self) -> bool:
        """Members may enter it. The SQL functions of migration 0006 say the same once in SQL
        (portal_tenant_usable); tests/test_roles.py checks that the two agree."""
        return self.status in USABLE_STATUSES

    @is_usable.inplace.expression
    @classmethod
    def _is_usable_expression(cls):
        return cls.status.in_(USABLE_STATUSES)

    @property
    def is_read_only(self) -> bool:
        return self.status in READ_ONLY_STATUSES

    @property
    def is_readable(self) -> bool:
        return self.status in READABLE_STATUSES

