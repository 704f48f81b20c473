"""SCIM 2.0 provisioning (issue 25).

- The Provisioning settings need `sso:manage`, which the SSO migration adds (owners only).
- `scim_tokens`: an organization's SCIM bearer tokens, stored as SHA-256 hashes.
- `scim_users`: the SCIM resource of a provisioned person, over its membership (removed with
  it); `scim_groups` and `scim_group_members`: the provider's groups, mapped to roles and sites.
- `portal_scim_enter(token hash)` (SECURITY DEFINER): the only read of a token before the
  tenant is known. For a live token it returns the tenant and the token, notes when it was last
  used (at most once a minute) and sets app.tenant_id when the tenant is readable, exactly as
  portal_api_enter_token does for an API token.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 06:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

TENANT_PREDICATE = "tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid"
TABLES = ("scim_tokens", "scim_users", "scim_groups", "scim_group_members")
TENANT_COLUMNS = """t_id uuid, t_name varchar, t_slug varchar, t_type tenant_type, t_status tenant_status,
               t_domain varchar, t_max_users integer, t_settings jsonb, t_created_at timestamptz"""

ENTER = f"""
CREATE FUNCTION public.portal_scim_enter(p_token_hash bytea)
RETURNS TABLE ({TENANT_COLUMNS}, k_id uuid, k_name varchar)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    v_last timestamptz;
BEGIN
    PERFORM set_config('app.tenant_id', '', true);
    SELECT tn.id, tn.name, tn.slug, tn.type, tn.status, tn.domain, tn.max_users, tn.settings, tn.created_at,
           k.id, k.name, k.last_used_at
      INTO t_id, t_name, t_slug, t_type, t_status, t_domain, t_max_users, t_settings, t_created_at,
           k_id, k_name, v_last
      FROM public.scim_tokens k JOIN public.tenants tn ON tn.id = k.tenant_id
     WHERE k.token_hash = p_token_hash AND k.revoked_at IS NULL;
    IF NOT FOUND THEN
        RETURN;  -- unknown or revoked: nothing leaves the database
    END IF;
    IF v_last IS NULL OR v_last < now() - interval '1 minute' THEN
        UPDATE public.scim_tokens SET last_used_at = now() WHERE tenant_id = t_id AND id = k_id;
    END IF;
    IF public.portal_tenant_readable(t_status) THEN
        PERFORM set_config('app.tenant_id', t_id::text, true);
        PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    END IF;
    RETURN NEXT;
END
$$
"""
FUNCTION = "public.portal_scim_enter(bytea)"


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.create_table(
        "scim_tokens",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_scim_tokens_created_by_users"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_scim_tokens_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_scim_tokens")),
    )
    op.create_index("ix_scim_tokens_tenant_created", "scim_tokens", ["tenant_id", "created_at"])
    op.create_index("ix_scim_tokens_token_hash", "scim_tokens", ["token_hash"])
    op.create_table(
        "scim_users",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("user_name", sa.String(length=320), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("emails", postgresql.ARRAY(sa.String(length=320)), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column("created_account", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "user_id"], ["user_tenant_associations.tenant_id",
                                                           "user_tenant_associations.user_id"],
                                name="fk_scim_users_membership", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_scim_users_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_scim_users")),
    )
    op.create_index("uq_scim_users_user_name", "scim_users", ["tenant_id", sa.literal_column("lower(user_name)")],
                    unique=True)
    op.create_index("uq_scim_users_user", "scim_users", ["tenant_id", "user_id"], unique=True)
    op.create_index("ix_scim_users_external_id", "scim_users", ["tenant_id", "external_id"])
    op.create_table(
        "scim_groups",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_scim_groups_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_scim_groups")),
    )
    op.create_index("uq_scim_groups_display_name", "scim_groups",
                    ["tenant_id", sa.literal_column("lower(display_name)")], unique=True)
    op.create_index("ix_scim_groups_external_id", "scim_groups", ["tenant_id", "external_id"])
    op.create_table(
        "scim_group_members",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("scim_user_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "group_id"], ["scim_groups.tenant_id", "scim_groups.id"],
                                name="fk_scim_group_members_group", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id", "scim_user_id"], ["scim_users.tenant_id", "scim_users.id"],
                                name="fk_scim_group_members_user", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_scim_group_members_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "group_id", "scim_user_id", name=op.f("pk_scim_group_members")),
    )
    op.create_index("ix_scim_group_members_user", "scim_group_members", ["tenant_id", "scim_user_id"])
    for table in ("scim_users", "scim_groups"):
        op.execute(f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION set_updated_at()")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) "
                   f"WITH CHECK ({TENANT_PREDICATE})")
    op.execute(ENTER)
    op.execute(f"REVOKE ALL ON FUNCTION {FUNCTION} FROM PUBLIC")
    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES)} TO {role}")
        op.execute(f"GRANT EXECUTE ON FUNCTION {FUNCTION} TO {role}")


def downgrade(app_role: str = "") -> None:
    op.execute(f"DROP FUNCTION {FUNCTION}")
    op.drop_table("scim_group_members")
    op.drop_table("scim_groups")
    op.drop_table("scim_users")
    op.drop_table("scim_tokens")
