"""The keyring (issue 23): data keys wrapped by master keys, and the installation's secrets moved
off SECRET_KEY.

- `tenant_keys` (a tenant table under forced RLS): a tenant's data keys, one row per version, each
  wrapped by a master key from PORTAL_MASTER_KEYS (named by its fingerprint); NULL once retired.
  Every existing tenant gets its version 1 here.
- `installation_keys`: the installation's own data key; `installation_secrets`: small named
  secrets sealed with it (the backup codes' lookup-hash key).
- `key_shreds`: what the tenant purge destroyed. `portal_purge_tenant` now deletes the tenant's
  data keys first and records which master keys had wrapped them (old backups hold those).
- Data: TOTP secrets (`users.totp_secret`) and queued email bodies (`email_outbox.payload`) were
  Fernet tokens under keys derived from SECRET_KEY; they are decrypted with it and sealed with the
  installation's data key. The backup codes' HMAC key was derived from SECRET_KEY too: its current
  value moves into `installation_secrets` (the stored hashes stay valid), so SECRET_KEY no longer
  protects anything stored. Rows that do not decrypt with SECRET_KEY are left as they were
  (they were already unreadable).

Runs with the portal configured (SECRET_KEY and PORTAL_MASTER_KEYS are read from the app).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 06:00:00
"""
import base64
import hashlib
import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from sqlalchemy.dialects import postgresql

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

POLICY = ("(tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid)")

PURGE = """
CREATE OR REPLACE FUNCTION public.portal_purge_tenant(p_tenant_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    t public.tenants%ROWTYPE;
BEGIN
    SELECT * INTO t FROM public.tenants WHERE id = p_tenant_id FOR UPDATE;
    IF NOT FOUND OR t.status <> 'pending_deletion' OR t.purge_after IS NULL OR t.purge_after > now() THEN
        RETURN false;
    END IF;
    -- Crypto-shredding first: without its data keys the tenant's sealed values are noise, here and
    -- (once the master keys named below are retired) in every backup taken before today.
    INSERT INTO public.key_shreds (purged_tenant_id, slug, master_key_ids)
    SELECT t.id, t.slug, coalesce(array_agg(DISTINCT k.master_key_id)
                                  FILTER (WHERE k.master_key_id IS NOT NULL), '{}')
      FROM public.tenant_keys k WHERE k.tenant_id = p_tenant_id
    ON CONFLICT (purged_tenant_id) DO NOTHING;
    DELETE FROM public.tenant_keys WHERE tenant_id = p_tenant_id;
    INSERT INTO public.tenant_tombstones (id, name, slug, requested_by, requested_at, purged_at)
    VALUES (t.id, t.name, t.slug, t.deletion_requested_by, t.deletion_requested_at, now());
    DELETE FROM public.devices WHERE tenant_id = p_tenant_id;
    DELETE FROM public.tenants WHERE id = p_tenant_id;
    RETURN true;
END
$$
"""


def _cipher():
    # The keyring's cryptography, with no database and no app state.
    from portal.keys import cipher
    return cipher


def _old_key(purpose: str, suffix: str = ":") -> bytes:
    """portal/crypto.py's derivation from SECRET_KEY, as it was."""
    return hashlib.sha256(f"portal-{purpose}{suffix}".encode() + current_app.config["SECRET_KEY"].encode()).digest()


def _old_fernet(purpose: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_old_key(purpose)))


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.create_table(
        "tenant_keys",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("master_key_id", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("version > 0", name=op.f("ck_tenant_keys_version_positive")),
        sa.CheckConstraint("(wrapped_key IS NULL) = (retired_at IS NOT NULL)",
                           name=op.f("ck_tenant_keys_retired_has_no_key")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_keys_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "version", name=op.f("pk_tenant_keys")),
    )
    op.execute("ALTER TABLE tenant_keys ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tenant_keys FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON tenant_keys USING {POLICY} WITH CHECK {POLICY}")
    op.create_table(
        "installation_keys",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("master_key_id", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("version > 0", name=op.f("ck_installation_keys_version_positive")),
        sa.CheckConstraint("(wrapped_key IS NULL) = (retired_at IS NOT NULL)",
                           name=op.f("ck_installation_keys_retired_has_no_key")),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_installation_keys")),
    )
    op.create_table(
        "installation_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_installation_secrets")),
    )
    op.create_table(
        "key_shreds",
        sa.Column("purged_tenant_id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("master_key_ids", postgresql.ARRAY(sa.String(length=16)), nullable=False),
        sa.Column("shredded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("purged_tenant_id", name=op.f("pk_key_shreds")),
    )
    op.execute(PURGE)
    role = _app_role(app_role)
    if role:
        # No DELETE: a data key row goes only with its tenant's purge (portal_purge_tenant).
        op.execute(f"GRANT SELECT, INSERT, UPDATE ON tenant_keys, installation_keys, installation_secrets TO {role}")
        op.execute(f"GRANT SELECT ON key_shreds TO {role}")
    _seal_existing()


def _seal_existing() -> None:
    cipher = _cipher()
    bind = op.get_bind()
    kid, master = cipher.parse_master_keys(current_app.config["PORTAL_MASTER_KEYS"])[0]
    for (tenant_id,) in bind.execute(sa.text("SELECT id FROM tenants")).all():
        bind.execute(sa.text("INSERT INTO tenant_keys (tenant_id, version, wrapped_key, master_key_id) "
                             "VALUES (:t, 1, :w, :m)"),
                     {"t": tenant_id, "w": cipher.wrap(master, cipher.new_key(), tenant_id=tenant_id, version=1),
                      "m": kid})
    key = cipher.new_key()
    bind.execute(sa.text("INSERT INTO installation_keys (version, wrapped_key, master_key_id) VALUES (1, :w, :m)"),
                 {"w": cipher.wrap(master, key, tenant_id=None, version=1), "m": kid})

    def seal(plain: bytes, table: str, column: str, row_id) -> bytes:
        return cipher.encrypt(key, 1, plain, tenant_id=None, table=table, column=column, row_id=row_id)

    # Existing backup codes were hashed with this key: it becomes a stored secret (a fresh
    # installation gets a random one on first use, keys.lookup_hash).
    if bind.execute(sa.text("SELECT EXISTS (SELECT 1 FROM mfa_backup_codes)")).scalar():
        bind.execute(sa.text("INSERT INTO installation_secrets (name, value) VALUES ('backup-code-hmac', :v)"),
                     {"v": seal(_old_key("backup-code", "-hmac:"), "installation_secrets", "value",
                                "backup-code-hmac")})
    for table, column, purpose in (("users", "totp_secret", "totp"), ("email_outbox", "payload", "outbox")):
        old = _old_fernet(purpose)
        rows = bind.execute(sa.text(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL")).all()
        for row_id, value in rows:
            try:
                plain = old.decrypt(bytes(value))
            except InvalidToken:
                continue
            bind.execute(sa.text(f"UPDATE {table} SET {column} = :v WHERE id = :i"),
                         {"v": seal(plain, table, column, row_id), "i": row_id})


def _previous_purge() -> str:
    path = Path(__file__).with_name("0009_plans_and_tenant_lifecycle.py")
    spec = importlib.util.spec_from_file_location("migration_0009", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PURGE.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def downgrade(app_role: str = "") -> None:
    """Back to Fernet under SECRET_KEY for what the installation key sealed (values it cannot read
    are left as they are); the keys themselves are dropped."""
    cipher = _cipher()
    bind = op.get_bind()
    masters = dict(cipher.parse_master_keys(current_app.config["PORTAL_MASTER_KEYS"]))
    keys = {}
    for version, wrapped, kid in bind.execute(sa.text(
            "SELECT version, wrapped_key, master_key_id FROM installation_keys WHERE wrapped_key IS NOT NULL")).all():
        if kid in masters:
            keys[version] = cipher.unwrap(masters[kid], bytes(wrapped), tenant_id=None, version=version)
    for table, column, purpose in (("users", "totp_secret", "totp"), ("email_outbox", "payload", "outbox")):
        fernet = _old_fernet(purpose)
        for row_id, value in bind.execute(sa.text(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL")).all():
            try:
                key = keys[cipher.version_of(value)]
                plain = cipher.decrypt(key, value, tenant_id=None, table=table, column=column, row_id=row_id)
            except (KeyError, cipher.Unreadable):
                continue
            bind.execute(sa.text(f"UPDATE {table} SET {column} = :v WHERE id = :i"),
                         {"v": fernet.encrypt(plain), "i": row_id})
    op.execute(_previous_purge())
    op.drop_table("key_shreds")
    op.drop_table("installation_secrets")
    op.drop_table("installation_keys")
    op.drop_table("tenant_keys")
