"""Passkeys (issue 24): WebAuthn credentials and their challenges.

- `authenticators` (seed 004's Authenticators): a user's passkeys. The credential id is unique
  across the installation (a discoverable sign-in finds the passkey by it); `counter` is the
  authenticator's signature counter, refused when it goes backwards; `device_type`
  (single_device or multi_device) and `backed_up` are what the authenticator said (synced
  passkeys are multi-device). Global like user_sessions: no tenant_id, no RLS.
- `webauthn_challenges`: one row per ceremony started (registration, sign-in, second factor,
  re-authentication), found by its value (unique), used once, expiring after five minutes; rows
  are deleted an hour after they expire by the next challenge made.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 06:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

TABLES = ["authenticators", "webauthn_challenges"]


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.create_table(
        "authenticators",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(), nullable=False),
        sa.Column("credential_public_key", sa.LargeBinary(), nullable=False),
        sa.Column("counter", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("transports", postgresql.ARRAY(sa.String(length=20)), server_default="{}", nullable=False),
        sa.Column("aaguid", sa.String(length=36), server_default="00000000-0000-0000-0000-000000000000",
                  nullable=False),
        sa.Column("device_type", sa.String(length=20), nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("friendly_name", sa.String(length=100), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("device_type IN ('single_device', 'multi_device')",
                           name=op.f("ck_authenticators_device_type_known")),
        sa.CheckConstraint("counter >= 0", name=op.f("ck_authenticators_counter_not_negative")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_authenticators_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authenticators")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_authenticators_credential_id")),
    )
    op.create_index("ix_authenticators_user", "authenticators", ["user_id", "created_at"], unique=False)
    op.execute("CREATE TRIGGER trg_authenticators_updated_at BEFORE UPDATE ON authenticators "
               "FOR EACH ROW EXECUTE FUNCTION set_updated_at()")
    op.create_table(
        "webauthn_challenges",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("challenge", sa.LargeBinary(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("purpose IN ('register', 'signin', 'second_factor', 'reauth')",
                           name=op.f("ck_webauthn_challenges_purpose_known")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_webauthn_challenges_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webauthn_challenges")),
        sa.UniqueConstraint("challenge", name=op.f("uq_webauthn_challenges_challenge")),
    )
    op.create_index("ix_webauthn_challenges_expires", "webauthn_challenges", ["expires_at"], unique=False)
    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES)} TO {role}")


def downgrade(app_role: str = "") -> None:
    role = _app_role(app_role)
    if role:
        op.execute(f"REVOKE ALL ON {', '.join(TABLES)} FROM {role}")
    op.drop_index("ix_webauthn_challenges_expires", table_name="webauthn_challenges")
    op.drop_table("webauthn_challenges")
    op.drop_index("ix_authenticators_user", table_name="authenticators")
    op.drop_table("authenticators")
