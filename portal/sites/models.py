from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (CheckConstraint, DateTime, ForeignKey, ForeignKeyConstraint, Index, Numeric, String,
                        UniqueConstraint, func)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Timestamps, db, jsonb, uuid_pk


class Site(Timestamps, db.Model):
    """A physical location of a tenant."""

    __tablename__ = "sites"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        CheckConstraint("latitude IS NULL OR latitude BETWEEN -90 AND 90", name="latitude_range"),
        CheckConstraint("longitude IS NULL OR longitude BETWEEN -180 AND 180", name="longitude_range"),
        CheckConstraint("(latitude IS NULL) = (longitude IS NULL)", name="coordinates_pair"),
        Index("ix_sites_metadata", "metadata", postgresql_using="gin"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(500))
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meta: Mapped[dict[str, Any]] = jsonb("metadata")


class SiteAssignment(db.Model):
    """A member's access to one site (seed 000's user_site_assignments)."""

    __tablename__ = "user_site_assignments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "site_id", "user_id"),
        ForeignKeyConstraint(["tenant_id", "site_id"], ["sites.tenant_id", "sites.id"], ondelete="CASCADE"),
        # Only members can be assigned: the key references the membership.
        ForeignKeyConstraint(["tenant_id", "user_id"],
                             ["user_tenant_associations.tenant_id", "user_tenant_associations.user_id"],
                             ondelete="CASCADE"),
        Index("ix_user_site_assignments_tenant_user", "tenant_id", "user_id"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    site_id: Mapped[UUID]
    user_id: Mapped[UUID]
    assigned_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
