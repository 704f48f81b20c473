"""The account's life (issue 24; seed 004 status and soft delete, seed 002 names).

- `users.status` (active, suspended, deactivated, deleted) with who, when and why of its last
  change; today's disabled accounts become suspended, with a reason that says so. `is_active`
  stays (the request-context function, RLS policies and notifications read it) and a trigger
  keeps it equal to `status = 'active'` whichever of the two a statement writes.
- Self-service deletion: `deletion_requested_at`, `deletion_due_at`, `deleted_at`.
- Names: `given_name` and `family_name`; `name` stays the display name the rest of the portal
  reads. Today's names are split at the first space ("Ada King Lovelace" -> "Ada" and
  "King Lovelace"); a single word is a given name. The display name itself is left as it was.
- Preferences and counts: `locale`, `login_count` (started from the sign-in history still
  kept), `avatar_version`; the avatar's bytes in `user_avatars`.
- `portal_request_context` returns `u_avatar_version` and `u_locale` too (the shell's account
  menu shows the avatar on every page without a statement of its own).
- `portal_scrub_security_events(user)`: a deleted account's security log loses its address.
- `account_exports`: a person's own data export and its emailed link (token stored hashed).
Both new tables belong to a user: RLS on app.user_id, like notifications.

Revision ID: 0023
Revises: 0022
"""
import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

OWN = "(user_id = (SELECT nullif(current_setting('app.user_id', true), ''))::uuid)"
TABLES = ("user_avatars", "account_exports")

SYNC = """
CREATE FUNCTION users_status_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A statement that writes is_active alone (older code, `flask users disable`) moves the
    -- status; otherwise the status decides is_active.
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status
            AND NEW.is_active IS DISTINCT FROM OLD.is_active THEN
        NEW.status := CASE WHEN NEW.is_active THEN 'active' ELSE 'suspended' END::user_status;
    ELSIF TG_OP = 'INSERT' AND NEW.status = 'active' AND NOT NEW.is_active THEN
        NEW.status := 'suspended';
    END IF;
    NEW.is_active := NEW.status = 'active';
    RETURN NEW;
END $$
"""


# The security log keeps a deleted account's events (who did what to it stays readable) but not
# its address, network addresses or browsers. SECURITY DEFINER: the serving role may only read
# and insert security events; this rewrites nothing of an account that is not deleted.
SCRUB = """
CREATE FUNCTION public.portal_scrub_security_events(p_user uuid) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE n integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM public.users WHERE id = p_user AND status = 'deleted') THEN
        RETURN 0;
    END IF;
    UPDATE public.security_events SET email = 'deleted-' || p_user::text || '@invalid', ip_address = NULL,
           user_agent = NULL
     WHERE user_id = p_user;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$
"""
SCRUB_SIGNATURE = "public.portal_scrub_security_events(uuid)"


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def _migration(name: str):
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _previous_request_context() -> str:
    return _migration("0018_user_timezone.py")._with_timezone(_migration("0006_roles_as_data.py").REQUEST_CONTEXT)


def _with_avatar_and_locale(body: str) -> str:
    """0018's function with u_avatar_version and u_locale after u_timezone: the shell's account
    menu shows the avatar on every page, from the request's first statement."""
    edits = [("u_timezone varchar,", "u_timezone varchar, u_avatar_version varchar, u_locale varchar,"),
             ("u.timezone, s.id,", "u.timezone, u.avatar_version, u.locale, s.id,"),
             ("u_timezone, s_id,", "u_timezone, u_avatar_version, u_locale, s_id,")]
    for old, new in edits:
        assert body.count(old) == 1, old
        body = body.replace(old, new)
    return body


def _replace_request_context(body: str, app_role: str) -> None:
    _migration("0018_user_timezone.py")._replace(body, app_role)  # drop, create, grant


def upgrade(app_role: str = "") -> None:
    status = sa.Enum("active", "suspended", "deactivated", "deleted", name="user_status")
    status.create(op.get_bind())
    op.add_column("users", sa.Column("given_name", sa.String(100), server_default="", nullable=False))
    op.add_column("users", sa.Column("family_name", sa.String(100), server_default="", nullable=False))
    op.add_column("users", sa.Column("locale", sa.String(35), nullable=True))
    op.add_column("users", sa.Column("status", status, server_default="active", nullable=False))
    op.add_column("users", sa.Column("status_reason", sa.String(500), nullable=True))
    op.add_column("users", sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("status_changed_by", sa.Uuid(), nullable=True))
    op.create_foreign_key(op.f("fk_users_status_changed_by_users"), "users", "users", ["status_changed_by"], ["id"],
                          ondelete="SET NULL")
    op.add_column("users", sa.Column("deletion_requested_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("deletion_due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("login_count", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("users", sa.Column("avatar_version", sa.String(16), nullable=True))
    # The worker's daily purge looks for due deletions only.
    op.create_index("ix_users_deletion_due", "users", ["deletion_due_at"],
                    postgresql_where=sa.text("deletion_due_at IS NOT NULL"))

    op.execute("""
        UPDATE users SET
            given_name = left(split_part(btrim(name), ' ', 1), 100),
            family_name = left(btrim(substr(btrim(name), length(split_part(btrim(name), ' ', 1)) + 1)), 100),
            status = CASE WHEN is_active THEN 'active' ELSE 'suspended' END::user_status,
            status_reason = CASE WHEN is_active THEN NULL ELSE 'Disabled before account statuses existed.' END,
            status_changed_at = CASE WHEN is_active THEN NULL ELSE updated_at END,
            login_count = (SELECT count(*) FROM login_events e WHERE e.user_id = users.id AND e.success)""")
    op.execute(SYNC)
    op.execute("CREATE TRIGGER trg_users_status_sync BEFORE INSERT OR UPDATE ON users "
               "FOR EACH ROW EXECUTE FUNCTION users_status_sync()")

    op.create_table(
        "user_avatars",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_avatars_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_avatars")),
    )
    op.create_table(
        "account_exports",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(10), server_default="queued", nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_account_exports_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_exports")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_exports_token_hash")),
    )
    op.create_index("ix_account_exports_user", "account_exports", ["user_id", "created_at"])
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY user_own ON {table} USING {OWN} WITH CHECK {OWN}")
    op.execute(SCRUB)
    op.execute(f"REVOKE ALL ON FUNCTION {SCRUB_SIGNATURE} FROM PUBLIC")
    _replace_request_context(_with_avatar_and_locale(_previous_request_context()), app_role)
    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES)} TO {role}")
        op.execute(f"GRANT EXECUTE ON FUNCTION {SCRUB_SIGNATURE} TO {role}")


def downgrade(app_role: str = "") -> None:
    role = _app_role(app_role)
    if role:
        op.execute(f"REVOKE ALL ON {', '.join(TABLES)} FROM {role}")
    op.execute(f"DROP FUNCTION {SCRUB_SIGNATURE}")
    _replace_request_context(_previous_request_context(), app_role)
    op.drop_index("ix_account_exports_user", table_name="account_exports")
    op.drop_table("account_exports")
    op.drop_table("user_avatars")
    op.execute("DROP TRIGGER trg_users_status_sync ON users")
    op.execute("DROP FUNCTION users_status_sync()")
    op.drop_index("ix_users_deletion_due", table_name="users", postgresql_where=sa.text("deletion_due_at IS NOT NULL"))
    op.drop_constraint(op.f("fk_users_status_changed_by_users"), "users", type_="foreignkey")
    for column in ("avatar_version", "login_count", "deleted_at", "deletion_due_at", "deletion_requested_at",
                   "status_changed_by", "status_changed_at", "status_reason", "status", "locale", "family_name",
                   "given_name"):
        op.drop_column("users", column)
    op.execute("DROP TYPE user_status")
