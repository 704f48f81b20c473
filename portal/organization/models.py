from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db, uuid_pk

EXPORT_STATUSES = ("queued", "running", "done", "failed")


class TenantExport(db.Model):
    """One export of a tenant's data (a tenant row: forced RLS, tenant_id in its keys)."""

    __tablename__ = "tenant_exports"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status_known"),
        Index("ix_tenant_exports_tenant_created", "tenant_id", "created_at"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    requested_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rows: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(500))
    token_hash: Mapped[bytes | None] = mapped_column(LargeBinary)  # the emailed link's, SHA-256
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


LOGO_TYPES = ("image/png", "image/jpeg", "image/webp")
LOGO_MAX_BYTES = 256 * 1024


class TenantLogo(db.Model):
    """The tenant's logo as the portal re-encoded it (never the uploaded bytes). Its version and
    the accent colour are in tenants.settings['branding'], read with the tenant on every request."""

    __tablename__ = "tenant_logos"
    __table_args__ = (
        CheckConstraint("media_type IN ('image/png', 'image/jpeg', 'image/webp')", name="media_type_known"),
        CheckConstraint("octet_length(content) <= 262144", name="content_small"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(16))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
