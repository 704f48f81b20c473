"""Per-organization single sign-on (issue 25): a tenant's OpenID Connect connections, the email
domains it has verified, the mappings of provider groups to roles and sites, and the links of
accounts to a connection's subjects. Tenant rows: forced RLS, tenant_id in every key.

The installation-wide provider (OIDC_* settings, users.oidc_issuer/oidc_subject) is separate and
unchanged; these are the organizations' own."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import (ARRAY, Boolean, DateTime, ForeignKey, ForeignKeyConstraint, Index, LargeBinary, String, Text,
                        UniqueConstraint, Uuid, func)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Timestamps, db, uuid_pk


class SsoConnection(Timestamps, db.Model):
    """An organization's OpenID provider. `client_secret` is sealed (sso.sealing), never shown again;
    `default_role` and mappings name roles by key (a system role's name or a custom role's id),
    resolved at each sign-in so a deleted custom role falls back instead of blocking its deletion."""

    __tablename__ = "sso_connections"
    __table_args__ = (Index("ix_sso_connections_tenant_name", "tenant_id", "name"),)

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(100))
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(255))
    client_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="false")
    default_role: Mapped[str] = mapped_column(String(64), server_default="member")
    invitations_only: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # Groups may map to the owner role only when an owner turned this on (issue 25).
    owner_by_mapping: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class SsoDomain(Timestamps, db.Model):
    """An email domain an organization claims; verified by a DNS TXT record. At most one
    organization holds a domain verified: checked across tenants by the SECURITY DEFINER function
    portal_sso_domain_holder under a per-domain advisory lock (migration 0019)."""

    __tablename__ = "sso_domains"
    __table_args__ = (
        UniqueConstraint("tenant_id", "domain"),
        Index("ix_sso_domains_domain", "domain"),  # home-realm discovery, before any tenant is known
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    domain: Mapped[str] = mapped_column(String(253))
    token: Mapped[str] = mapped_column(String(64))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    check_error: Mapped[str | None] = mapped_column(String(300))
    lost_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # verified, then the record went
    require_sso: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class SsoGroupMapping(db.Model):
    """A provider group (the `groups` claim: a name, or a Keycloak path like /acme/technicians) that
    gives a role, and optionally sites, at every sign-in through its connection."""

    __tablename__ = "sso_group_mappings"
    __table_args__ = (
        UniqueConstraint("tenant_id", "connection_id", "group_name"),
        ForeignKeyConstraint(["tenant_id", "connection_id"], ["sso_connections.tenant_id", "sso_connections.id"],
                             ondelete="CASCADE"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    connection_id: Mapped[UUID] = mapped_column()
    group_name: Mapped[str] = mapped_column(String(500))
    external_id: Mapped[str | None] = mapped_column(String(255))  # the provider's group id (Keycloak's)
    role_key: Mapped[str] = mapped_column(String(64))
    site_ids: Mapped[list[UUID] | None] = mapped_column(ARRAY(Uuid))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SsoIdentity(db.Model):
    """An account's link to a connection's subject (seed 000's keycloak_id, per organization)."""

    __tablename__ = "sso_identities"
    __table_args__ = (
        UniqueConstraint("tenant_id", "connection_id", "subject"),
        Index("ix_sso_identities_tenant_user", "tenant_id", "user_id"),
        ForeignKeyConstraint(["tenant_id", "connection_id"], ["sso_connections.tenant_id", "sso_connections.id"],
                             ondelete="CASCADE"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    connection_id: Mapped[UUID] = mapped_column()
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(255))
    groups: Mapped[list[str] | None] = mapped_column(ARRAY(Text))  # as received at the last sign-in
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
