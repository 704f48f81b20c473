from __future__ import annotations

import enum
import re
from typing import Any
from uuid import UUID

from sqlalchemy import CheckConstraint, Index, Integer, String
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


USABLE_STATUSES = (TenantStatus.ACTIVE, TenantStatus.PENDING)


class Tenant(Timestamps, db.Model):
    """An organization. Global (not tenant-scoped): it is the tenant itself."""

    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint(f"slug ~ '{SLUG_PATTERN}'", name="slug_format"),
        CheckConstraint("max_users > 0", name="max_users_positive"),
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
    max_users: Mapped[int] = mapped_column(Integer, server_default="25")
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

