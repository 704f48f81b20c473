"""SCIM provisioning (RFC 7643/7644): the organization's bearer tokens, and what the identity
provider said about the people and groups it provisions. Tenant rows: forced RLS, tenant_id in
every key. Tokens are stored as SHA-256 hashes only (see tokens.py)."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (ARRAY, Boolean, DateTime, ForeignKey, ForeignKeyConstraint, Index, Integer, LargeBinary,
                        String, func, text)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Timestamps, db, jsonb, uuid_pk


class ScimToken(db.Model):
    """A bearer token an identity provider presents on /scim/v2. Read before the tenant is known
    only inside portal_scim_enter (by its hash)."""

    __tablename__ = "scim_tokens"
    __table_args__ = (
        Index("ix_scim_tokens_tenant_created", "tenant_id", "created_at"),
        # portal_scim_enter: by hash alone. Not unique (unique keys carry tenant_id, for Citus);
        # 256-bit random tokens do not collide.
        Index("ix_scim_tokens_token_hash", "token_hash"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ScimUser(Timestamps, db.Model):
    """A provisioned person: the SCIM resource (its own id per organization, so no id is shared
    between organizations) over one membership. Removing the membership, by SCIM or on the
    members page, removes the resource with it."""

    __tablename__ = "scim_users"
    __table_args__ = (
        Index("uq_scim_users_user_name", "tenant_id", func.lower(text("user_name")), unique=True),
        Index("uq_scim_users_user", "tenant_id", "user_id", unique=True),
        Index("ix_scim_users_external_id", "tenant_id", "external_id"),
        ForeignKeyConstraint(["tenant_id", "user_id"], ["user_tenant_associations.tenant_id",
                                                        "user_tenant_associations.user_id"],
                             name="fk_scim_users_membership", ondelete="CASCADE"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    user_id: Mapped[UUID] = mapped_column()
    user_name: Mapped[str] = mapped_column(String(320))
    external_id: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(200))
    # Lower-cased email values, for the `emails.value` filters; `attributes` keeps them as sent.
    emails: Mapped[list[str]] = mapped_column(ARRAY(String(320)), server_default=text("'{}'"))
    # name, emails (value, type, primary), title...: what the provider sent and gets back.
    attributes: Mapped[dict[str, Any]] = jsonb()
    # Whether SCIM made the account: only then may it rename the person.
    created_account: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class ScimGroup(Timestamps, db.Model):
    """A provider's group: its members' role and sites follow the organization's group mappings."""

    __tablename__ = "scim_groups"
    __table_args__ = (
        Index("uq_scim_groups_display_name", "tenant_id", func.lower(text("display_name")), unique=True),
        Index("ix_scim_groups_external_id", "tenant_id", "external_id"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    display_name: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class ScimGroupMember(db.Model):
    __tablename__ = "scim_group_members"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "group_id"], ["scim_groups.tenant_id", "scim_groups.id"],
                             name="fk_scim_group_members_group", ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "scim_user_id"], ["scim_users.tenant_id", "scim_users.id"],
                             name="fk_scim_group_members_user", ondelete="CASCADE"),
        Index("ix_scim_group_members_user", "tenant_id", "scim_user_id"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[UUID] = mapped_column(primary_key=True)
    scim_user_id: Mapped[UUID] = mapped_column(primary_key=True)
