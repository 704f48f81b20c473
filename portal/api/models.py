"""API clients (tenant principals), their access tokens and the Idempotency-Key records of
their creates. Secrets and tokens are stored as SHA-256 hashes only (see credentials.py)."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Boolean,
    CheckConstraint,
    Integer,
    LargeBinary,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Timestamps, db, uuid_pk


class ApiClient(Timestamps, db.Model):
    """An OAuth 2.0 client of one tenant: a program with client credentials (`kind` "service"),
    or an application that acts for people who authorise it (`kind` "app": authorization code
    with PKCE, see api/grants.py). Its public client_id is `id`; looked up by it alone (before the
    tenant is known) only inside portal_api_client_auth and portal_oauth_app."""

    __tablename__ = "api_clients"
    __table_args__ = (
        Index("ix_api_clients_tenant_name", "tenant_id", "name"),
        Index("ix_api_clients_id", "id"),  # portal_api_client_auth: by client_id alone
        CheckConstraint("kind IN ('service', 'app')", name="kind"),
        # Only a public app has no secret.
        CheckConstraint("(kind = 'app' AND is_public) = (secret_hash IS NULL)", name="secret"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default=text("'{}'"))
    # None: every site (a tenant principal); otherwise only these sites and their devices.
    site_ids: Mapped[list[UUID] | None] = mapped_column(ARRAY(Uuid))
    kind: Mapped[str] = mapped_column(String(16), server_default="service")
    redirect_uris: Mapped[list[str]] = mapped_column(ARRAY(String(2000)), server_default=text("'{}'"))
    is_public: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    # After a rotation the previous secret keeps working until previous_secret_expires_at.
    previous_secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ApiToken(db.Model):
    """An access token: bearer of the client's scopes (or fewer) in its tenant until it expires
    or is revoked. Looked up by hash alone only inside portal_api_enter_token."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "client_ref"], ["api_clients.tenant_id", "api_clients.id"],
                             ondelete="CASCADE"),
        Index("ix_api_tokens_tenant_client", "tenant_id", "client_ref"),
        Index("ix_api_tokens_token_hash", "token_hash"),
        ForeignKeyConstraint(["tenant_id", "grant_ref"], ["oauth_grants.tenant_id", "oauth_grants.id"],
                             ondelete="CASCADE"),
        Index("ix_api_tokens_tenant_grant", "tenant_id", "grant_ref"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    client_ref: Mapped[UUID] = mapped_column(Uuid)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Issued to an app for a person (api/grants.py): lives only as long as the grant.
    grant_ref: Mapped[UUID | None] = mapped_column(Uuid)


class OAuthGrant(Timestamps, db.Model):
    """A person's consent to an app in the app's organization, with the scopes consented to. Its
    tokens act as that person, capped at each request by the person's role (api/auth.py)."""

    __tablename__ = "oauth_grants"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "client_ref"], ["api_clients.tenant_id", "api_clients.id"],
                             ondelete="CASCADE"),
        Index("ix_oauth_grants_tenant_client", "tenant_id", "client_ref"),
        Index("ix_oauth_grants_tenant_user", "tenant_id", "user_id"),
        Index("ix_oauth_grants_user", "user_id"),  # portal_oauth_my_grants, portal_oauth_revoke_user_grants
        # One live grant per person and app: consenting again updates it.
        Index("uq_oauth_grants_live", "tenant_id", "client_ref", "user_id", unique=True,
              postgresql_where=text("revoked_at IS NULL")),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    client_ref: Mapped[UUID] = mapped_column(Uuid)
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default=text("'{}'"))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class OAuthAuthorizationCode(db.Model):
    """A single-use code (hash) for ten minutes, bound to its redirect URI and PKCE challenge."""

    __tablename__ = "oauth_authorization_codes"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "grant_ref"], ["oauth_grants.tenant_id", "oauth_grants.id"],
                             ondelete="CASCADE"),
        Index("ix_oauth_authorization_codes_tenant_code", "tenant_id", "code_hash", unique=True),
        Index("ix_oauth_authorization_codes_tenant_grant", "tenant_id", "grant_ref"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    grant_ref: Mapped[UUID] = mapped_column(Uuid)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary)
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default=text("'{}'"))
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OAuthRefreshToken(db.Model):
    """A refresh token (hash). Rotating: each use marks it used and issues the next; a used one
    presented again revokes its grant (reuse detection)."""

    __tablename__ = "oauth_refresh_tokens"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "grant_ref"], ["oauth_grants.tenant_id", "oauth_grants.id"],
                             ondelete="CASCADE"),
        Index("ix_oauth_refresh_tokens_tenant_token", "tenant_id", "token_hash", unique=True),
        Index("ix_oauth_refresh_tokens_tenant_grant", "tenant_id", "grant_ref"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    grant_ref: Mapped[UUID] = mapped_column(Uuid)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotencyKey(db.Model):
    """The first successful response to a create sent with an Idempotency-Key, replayed to its
    retries until `expires_at`. Written in the create's own transaction: a failed create
    leaves nothing, and a concurrent retry waits on the primary key until the first commits."""

    __tablename__ = "api_idempotency_keys"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "client_ref"], ["api_clients.tenant_id", "api_clients.id"],
                             ondelete="CASCADE"),
        Index("ix_api_idempotency_keys_tenant_expires", "tenant_id", "expires_at"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    client_ref: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary)  # method, path and body of the first request
    status: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    location: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
