"""API clients, access tokens and idempotency keys (issue 15, seed 004).

- `api_clients`: OAuth 2.0 clients (client credentials), each a principal of its tenant with
  scopes from the permission catalogue and optionally a list of sites it is restricted to.
  Secrets are stored as SHA-256 hashes; after a rotation the previous hash stays valid until
  `previous_secret_expires_at`.
- `api_tokens`: access tokens, stored as SHA-256 hashes, expiring, revocable.
- `api_idempotency_keys`: the first response of a create sent with an Idempotency-Key.
- Two narrow SECURITY DEFINER doors, the only reads of these rows before the tenant is known:
  `portal_api_client_auth(client id, secret hash)` answers only for the right secret, and
  `portal_api_enter_token(token hash)` only for a live token; each sets app.tenant_id (as
  portal_enter_tenant does) when its tenant is readable, and nothing else.
- Permission `api:manage` (owners and admins), last in the catalogue.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 19:40:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

TENANT_PREDICATE = "tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid"
TABLES = ("api_clients", "api_tokens", "api_idempotency_keys")

TENANT_COLUMNS = """t_id uuid, t_name varchar, t_slug varchar, t_type tenant_type, t_status tenant_status,
               t_domain varchar, t_max_users integer, t_settings jsonb, t_created_at timestamptz"""

CLIENT_AUTH = f"""
CREATE FUNCTION public.portal_api_client_auth(p_client_id uuid, p_secret_hash bytea)
RETURNS TABLE ({TENANT_COLUMNS}, c_id uuid, c_name varchar, c_scopes varchar[], c_site_ids uuid[])
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM set_config('app.tenant_id', '', true);
    SELECT tn.id, tn.name, tn.slug, tn.type, tn.status, tn.domain, tn.max_users, tn.settings, tn.created_at,
           c.id, c.name, c.scopes, c.site_ids
      INTO t_id, t_name, t_slug, t_type, t_status, t_domain, t_max_users, t_settings, t_created_at,
           c_id, c_name, c_scopes, c_site_ids
      FROM public.api_clients c JOIN public.tenants tn ON tn.id = c.tenant_id
     WHERE c.id = p_client_id AND c.disabled_at IS NULL
       AND (c.secret_hash = p_secret_hash
            OR (c.previous_secret_hash = p_secret_hash AND c.previous_secret_expires_at > now()));
    IF NOT FOUND THEN
        RETURN;  -- unknown client, wrong secret or disabled: nothing leaves the database
    END IF;
    IF public.portal_tenant_readable(t_status) THEN
        PERFORM set_config('app.tenant_id', t_id::text, true);
    END IF;
    RETURN NEXT;
END
$$
"""

ENTER_TOKEN = f"""
CREATE FUNCTION public.portal_api_enter_token(p_token_hash bytea)
RETURNS TABLE ({TENANT_COLUMNS}, c_id uuid, c_name varchar, c_site_ids uuid[], k_id uuid, k_scopes varchar[],
               k_expires_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM set_config('app.tenant_id', '', true);
    SELECT tn.id, tn.name, tn.slug, tn.type, tn.status, tn.domain, tn.max_users, tn.settings, tn.created_at,
           c.id, c.name, c.site_ids, k.id, k.scopes, k.expires_at
      INTO t_id, t_name, t_slug, t_type, t_status, t_domain, t_max_users, t_settings, t_created_at,
           c_id, c_name, c_site_ids, k_id, k_scopes, k_expires_at
      FROM public.api_tokens k
      JOIN public.api_clients c ON c.tenant_id = k.tenant_id AND c.id = k.client_ref
      JOIN public.tenants tn ON tn.id = k.tenant_id
     WHERE k.token_hash = p_token_hash AND k.revoked_at IS NULL AND k.expires_at > now()
       AND c.disabled_at IS NULL;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF public.portal_tenant_readable(t_status) THEN
        PERFORM set_config('app.tenant_id', t_id::text, true);
        -- As portal_enter_tenant: tenants differ in size by orders of magnitude.
        PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    END IF;
    RETURN NEXT;
END
$$
"""
FUNCTIONS = ("public.portal_api_client_auth(uuid, bytea)", "public.portal_api_enter_token(bytea)")


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.execute("INSERT INTO permissions (name, resource, action, category, description, position) "
               "SELECT 'api:manage', 'api', 'manage', 'API', 'Create, rotate, disable and delete API clients', "
               "max(position) + 1 FROM permissions")
    op.execute("INSERT INTO role_permissions (role, permission) VALUES ('owner', 'api:manage'), "
               "('admin', 'api:manage')")
    op.create_table('api_clients',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('scopes', postgresql.ARRAY(sa.String(length=64)), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('site_ids', postgresql.ARRAY(sa.Uuid()), nullable=True),
    sa.Column('secret_hash', sa.LargeBinary(), nullable=False),
    sa.Column('previous_secret_hash', sa.LargeBinary(), nullable=True),
    sa.Column('previous_secret_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_api_clients_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_api_clients_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_api_clients'))
    )
    op.create_index('ix_api_clients_id', 'api_clients', ['id'], unique=False)
    op.create_index('ix_api_clients_tenant_name', 'api_clients', ['tenant_id', 'name'], unique=False)
    op.create_table('api_tokens',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('client_ref', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.LargeBinary(), nullable=False),
    sa.Column('scopes', postgresql.ARRAY(sa.String(length=64)), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'client_ref'], ['api_clients.tenant_id', 'api_clients.id'], name=op.f('fk_api_tokens_tenant_id_client_ref_api_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_api_tokens_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_api_tokens'))
    )
    op.create_index('ix_api_tokens_tenant_client', 'api_tokens', ['tenant_id', 'client_ref'], unique=False)
    op.create_index('ix_api_tokens_token_hash', 'api_tokens', ['token_hash'], unique=False)
    op.create_table('api_idempotency_keys',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('client_ref', sa.Uuid(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('body', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('location', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'client_ref'], ['api_clients.tenant_id', 'api_clients.id'], name=op.f('fk_api_idempotency_keys_tenant_id_client_ref_api_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_api_idempotency_keys_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'client_ref', 'key', name=op.f('pk_api_idempotency_keys'))
    )
    op.create_index('ix_api_idempotency_keys_tenant_expires', 'api_idempotency_keys', ['tenant_id', 'expires_at'], unique=False)
    op.execute("CREATE TRIGGER trg_api_clients_updated_at BEFORE UPDATE ON api_clients "
               "FOR EACH ROW EXECUTE FUNCTION set_updated_at()")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) "
                   f"WITH CHECK ({TENANT_PREDICATE})")
    op.execute(CLIENT_AUTH)
    op.execute(ENTER_TOKEN)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES)} TO {role}")
        for function in FUNCTIONS:
            op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {role}")


def downgrade(app_role: str = "") -> None:
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}")
    op.drop_index('ix_api_idempotency_keys_tenant_expires', table_name='api_idempotency_keys')
    op.drop_table('api_idempotency_keys')
    op.drop_index('ix_api_tokens_token_hash', table_name='api_tokens')
    op.drop_index('ix_api_tokens_tenant_client', table_name='api_tokens')
    op.drop_table('api_tokens')
    op.drop_index('ix_api_clients_tenant_name', table_name='api_clients')
    op.drop_index('ix_api_clients_id', table_name='api_clients')
    op.drop_table('api_clients')
    op.execute("DELETE FROM permissions WHERE name = 'api:manage'")  # grants cascade
