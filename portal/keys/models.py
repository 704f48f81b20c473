"""The keyring's tables: data keys (a tenant's, the installation's), wrapped by a master key; the
installation's own small secrets, sealed; and a record of every crypto-shredded tenant."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import ARRAY, CheckConstraint, DateTime, ForeignKey, Integer, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


class TenantKey(db.Model):
    """A tenant's data key, one row per version, under the tenant's RLS. `wrapped_key` is NULL once
    the version is retired (every value re-sealed with a newer one): the key is gone for good."""

    __tablename__ = "tenant_keys"
    __table_args__ = (
        CheckConstraint("version > 0", name="version_positive"),
        CheckConstraint("(wrapped_key IS NULL) = (retired_at IS NOT NULL)", name="retired_has_no_key"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    master_key_id: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class InstallationKey(db.Model):
    """The installation's own data key (TOTP secrets, queued email bodies, installation secrets)."""

    __tablename__ = "installation_keys"
    __table_args__ = (
        CheckConstraint("version > 0", name="version_positive"),
        CheckConstraint("(wrapped_key IS NULL) = (retired_at IS NOT NULL)", name="retired_has_no_key"),
    )

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    master_key_id: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class InstallationSecret(db.Model):
    """A named secret of the installation (e.g. the key of the backup codes' lookup hash), sealed
    with the installation's data key: it survives a SECRET_KEY rotation and follows key rotation."""

    __tablename__ = "installation_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class KeyShred(db.Model):
    """A purged tenant whose data keys were destroyed. Backups taken before the purge still hold its
    keys wrapped by `master_key_ids`: the shred reaches those backups once all of these master keys
    are retired (`flask keys status` lists the ones still configured)."""

    __tablename__ = "key_shreds"

    purged_tenant_id: Mapped[UUID] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63))
    master_key_ids: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    shredded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
