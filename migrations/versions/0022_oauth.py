"""Connected apps: OAuth 2.0 authorization code with PKCE (issue 24, seed 004 OAuthClients/OAuthTokens).

- `api_clients` also holds applications (`kind = 'app'`): redirect URIs (exact match), public
  (no secret, PKCE only) or confidential. Existing rows are the client-credentials clients
  (`kind = 'service'`), unchanged; a public app has no secret hash.
- `oauth_grants`: one person's consent to one app in one organization (the app's tenant), with
  the scopes consented to; revoked by the person, an owner, a reused refresh token or code, or
  the member's removal or suspension. Every token of a grant dies with it.
- `oauth_authorization_codes`: single use, ten minutes, bound to the redirect URI and the PKCE
  S256 challenge; stored as hashes.
- `oauth_refresh_tokens`: rotating; a used one presented again revokes the grant. Hashes only.
- `api_tokens.grant_ref`: an access token issued to an app for a person.
- `portal_api_enter_token` now answers for a person's token only while the grant is live, the
  person active and still an active member, and returns the membership and its role's
  permissions (the columns of portal_enter_tenant): the API caps the token's scopes with them
  at each request, so a lowered role lowers the token.
- Two more SECURITY DEFINER doors: `portal_oauth_app(client id, enter)` describes an enabled app
  before its tenant is known (the authorization page) and enters the tenant of a public one
  (its token requests have no secret to check); `portal_oauth_my_grants()` lists the signed-in
  person's live grants in every organization (their account page), and
  `portal_oauth_revoke_user_grants(user, tenant)` ends a person's grants everywhere or in one
  organization (account suspension and deletion), returning what it revoked for the audit log.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 06:00:00
"""
import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

TENANT_PREDICATE = "tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid"
TABLES = ("oauth_grants", "oauth_authorization_codes", "oauth_refresh_tokens")

TENANT_COLUMNS = """t_id uuid, t_name varchar, t_slug varchar, t_type tenant_type, t_status tenant_status,
               t_domain varchar, t_max_users integer, t_settings jsonb, t_created_at timestamptz"""

OAUTH_APP = f"""
CREATE FUNCTION public.portal_oauth_app(p_client_id uuid, p_enter boolean)
RETURNS TABLE ({TENANT_COLUMNS}, c_id uuid, c_name varchar, c_scopes varchar[], c_redirect_uris varchar[],
               c_is_public boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF p_enter THEN
        PERFORM set_config('app.tenant_id', '', true);
    END IF;
    SELECT tn.id, tn.name, tn.slug, tn.type, tn.status, tn.domain, tn.max_users, tn.settings, tn.created_at,
           c.id, c.name, c.scopes, c.redirect_uris, c.is_public
      INTO t_id, t_name, t_slug, t_type, t_status, t_domain, t_max_users, t_settings, t_created_at,
           c_id, c_name, c_scopes, c_redirect_uris, c_is_public
      FROM public.api_clients c JOIN public.tenants tn ON tn.id = c.tenant_id
     WHERE c.id = p_client_id AND c.kind = 'app' AND c.disabled_at IS NULL;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- A public app has no secret: its client id is all it shows, and entering its tenant lets the
    -- token endpoint find its codes and refresh tokens (by hash), nothing more.
    IF p_enter AND c_is_public AND public.portal_tenant_readable(t_status) THEN
        PERFORM set_config('app.tenant_id', t_id::text, true);
    END IF;
    RETURN NEXT;
END
$$
"""

ENTER_TOKEN = f"""
CREATE FUNCTION public.portal_api_enter_token(p_token_hash bytea)
RETURNS TABLE ({TENANT_COLUMNS}, c_id uuid, c_name varchar, c_site_ids uuid[], k_id uuid, k_scopes varchar[],
               k_expires_at timestamptz, g_id uuid, g_last_used_at timestamptz, u_id uuid,
               m_id uuid, m_role membership_role, m_custom_role_id uuid, m_status membership_status,
               m_last_active_at timestamptz, m_accepted_at timestamptz, m_created_at timestamptz,
               r_name varchar, r_permissions text[])
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM set_config('app.tenant_id', '', true);
    SELECT tn.id, tn.name, tn.slug, tn.type, tn.status, tn.domain, tn.max_users, tn.settings, tn.created_at,
           c.id, c.name, c.site_ids, k.id, k.scopes, k.expires_at, gr.id, gr.last_used_at, gr.user_id,
           m.id, m.role, m.custom_role_id, m.status, m.last_active_at, m.accepted_at, m.created_at
      INTO t_id, t_name, t_slug, t_type, t_status, t_domain, t_max_users, t_settings, t_created_at,
           c_id, c_name, c_site_ids, k_id, k_scopes, k_expires_at, g_id, g_last_used_at, u_id,
           m_id, m_role, m_custom_role_id, m_status, m_last_active_at, m_accepted_at, m_created_at
      FROM public.api_tokens k
      JOIN public.api_clients c ON c.tenant_id = k.tenant_id AND c.id = k.client_ref
      JOIN public.tenants tn ON tn.id = k.tenant_id
      LEFT JOIN public.oauth_grants gr ON gr.tenant_id = k.tenant_id AND gr.id = k.grant_ref
      LEFT JOIN public.users u ON u.id = gr.user_id
      LEFT JOIN public.user_tenant_associations m
        ON m.tenant_id = k.tenant_id AND m.user_id = gr.user_id AND m.status = 'active'
     WHERE k.token_hash = p_token_hash AND k.revoked_at IS NULL AND k.expires_at > now()
       AND c.disabled_at IS NULL
       -- A person's token lives only while its grant does, and while they are an active member.
       AND (k.grant_ref IS NULL OR (gr.revoked_at IS NULL AND u.is_active AND m.id IS NOT NULL));
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF public.portal_tenant_readable(t_status) THEN
        PERFORM set_config('app.tenant_id', t_id::text, true);
        IF m_id IS NOT NULL THEN  -- the person's role now, as portal_enter_tenant reads it
            IF m_custom_role_id IS NULL THEN
                SELECT r.name, ARRAY(SELECT rp.permission FROM public.role_permissions rp WHERE rp.role = r.key)
                  INTO r_name, r_permissions FROM public.roles r WHERE r.key = m_role;
            ELSE
                SELECT r.name, ARRAY(SELECT rp.permission FROM public.tenant_role_permissions rp
                                      WHERE rp.tenant_id = r.tenant_id AND rp.role_id = r.id)
                  INTO r_name, r_permissions FROM public.tenant_roles r
                 WHERE r.tenant_id = t_id AND r.id = m_custom_role_id;
            END IF;
        END IF;
        -- As portal_enter_tenant: tenants differ in size by orders of magnitude.
        PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    END IF;
    RETURN NEXT;
END
$$
"""

MY_GRANTS = """
CREATE FUNCTION public.portal_oauth_my_grants()
RETURNS TABLE (g_id uuid, g_scopes varchar[], g_created_at timestamptz, g_last_used_at timestamptz,
               c_id uuid, c_name varchar, t_id uuid, t_name varchar, t_slug varchar)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT gr.id, gr.scopes, gr.created_at, gr.last_used_at, c.id, c.name, tn.id, tn.name, tn.slug
      FROM public.oauth_grants gr
      JOIN public.api_clients c ON c.tenant_id = gr.tenant_id AND c.id = gr.client_ref
      JOIN public.tenants tn ON tn.id = gr.tenant_id
     WHERE gr.user_id = nullif(current_setting('app.user_id', true), '')::uuid AND gr.revoked_at IS NULL
     ORDER BY tn.name, c.name, gr.created_at
$$
"""

REVOKE_USER = """
CREATE FUNCTION public.portal_oauth_revoke_user_grants(p_user_id uuid, p_tenant_id uuid, p_reason varchar)
RETURNS TABLE (tenant_id uuid, id uuid, client_ref uuid)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    UPDATE public.oauth_grants gr SET revoked_at = now(), revoked_reason = p_reason
     WHERE gr.user_id = p_user_id AND gr.revoked_at IS NULL
       AND (p_tenant_id IS NULL OR gr.tenant_id = p_tenant_id)
    RETURNING gr.tenant_id, gr.id, gr.client_ref
$$
"""

FUNCTIONS = {"public.portal_oauth_app(uuid, boolean)": OAUTH_APP,
             "public.portal_oauth_my_grants()": MY_GRANTS,
             "public.portal_oauth_revoke_user_grants(uuid, uuid, varchar)": REVOKE_USER}
ENTER_SIGNATURE = "public.portal_api_enter_token(bytea)"


def _migration_0013():
    path = Path(__file__).with_name("0013_api_clients_and_tokens.py")
    spec = importlib.util.spec_from_file_location("migration_0013", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _grant(signature: str, app_role: str) -> None:
    op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    role = _migration_0013()._app_role(app_role)
    if role:
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {role}")


def upgrade(app_role: str = "") -> None:
    op.add_column('api_clients', sa.Column('kind', sa.String(length=16), server_default='service', nullable=False))
    op.add_column('api_clients', sa.Column('redirect_uris', postgresql.ARRAY(sa.String(length=2000)),
                                           server_default=sa.text("'{}'"), nullable=False))
    op.add_column('api_clients', sa.Column('is_public', sa.Boolean(), server_default=sa.text('false'),
                                           nullable=False))
    op.alter_column('api_clients', 'secret_hash', existing_type=sa.LargeBinary(), nullable=True)
    op.create_check_constraint(op.f('ck_api_clients_kind'), 'api_clients', "kind IN ('service', 'app')")
    op.create_check_constraint(op.f('ck_api_clients_secret'), 'api_clients',
                               "(kind = 'app' AND is_public) = (secret_hash IS NULL)")
    op.create_table('oauth_grants',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('client_ref', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('scopes', postgresql.ARRAY(sa.String(length=64)), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'client_ref'], ['api_clients.tenant_id', 'api_clients.id'], name=op.f('fk_oauth_grants_tenant_id_client_ref_api_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_oauth_grants_tenant_id_tenants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_oauth_grants_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_oauth_grants'))
    )
    op.create_index('ix_oauth_grants_tenant_client', 'oauth_grants', ['tenant_id', 'client_ref'], unique=False)
    op.create_index('ix_oauth_grants_tenant_user', 'oauth_grants', ['tenant_id', 'user_id'], unique=False)
    op.create_index('ix_oauth_grants_user', 'oauth_grants', ['user_id'], unique=False)
    op.create_index('uq_oauth_grants_live', 'oauth_grants', ['tenant_id', 'client_ref', 'user_id'], unique=True,
                    postgresql_where=sa.text('revoked_at IS NULL'))
    op.create_table('oauth_authorization_codes',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('grant_ref', sa.Uuid(), nullable=False),
    sa.Column('code_hash', sa.LargeBinary(), nullable=False),
    sa.Column('redirect_uri', sa.String(length=2000), nullable=False),
    sa.Column('scopes', postgresql.ARRAY(sa.String(length=64)), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('code_challenge', sa.String(length=128), nullable=False),
    sa.Column('code_challenge_method', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'grant_ref'], ['oauth_grants.tenant_id', 'oauth_grants.id'], name=op.f('fk_oauth_authorization_codes_tenant_id_grant_ref_oauth_grants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_oauth_authorization_codes_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_oauth_authorization_codes'))
    )
    op.create_index('ix_oauth_authorization_codes_tenant_code', 'oauth_authorization_codes', ['tenant_id', 'code_hash'], unique=True)
    op.create_index('ix_oauth_authorization_codes_tenant_grant', 'oauth_authorization_codes', ['tenant_id', 'grant_ref'], unique=False)
    op.create_table('oauth_refresh_tokens',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('grant_ref', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.LargeBinary(), nullable=False),
    sa.Column('scopes', postgresql.ARRAY(sa.String(length=64)), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'grant_ref'], ['oauth_grants.tenant_id', 'oauth_grants.id'], name=op.f('fk_oauth_refresh_tokens_tenant_id_grant_ref_oauth_grants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_oauth_refresh_tokens_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_oauth_refresh_tokens'))
    )
    op.create_index('ix_oauth_refresh_tokens_tenant_token', 'oauth_refresh_tokens', ['tenant_id', 'token_hash'], unique=True)
    op.create_index('ix_oauth_refresh_tokens_tenant_grant', 'oauth_refresh_tokens', ['tenant_id', 'grant_ref'], unique=False)
    op.add_column('api_tokens', sa.Column('grant_ref', sa.Uuid(), nullable=True))
    op.create_foreign_key(op.f('fk_api_tokens_tenant_id_grant_ref_oauth_grants'), 'api_tokens', 'oauth_grants',
                          ['tenant_id', 'grant_ref'], ['tenant_id', 'id'], ondelete='CASCADE')
    op.create_index('ix_api_tokens_tenant_grant', 'api_tokens', ['tenant_id', 'grant_ref'], unique=False)
    op.execute("CREATE TRIGGER trg_oauth_grants_updated_at BEFORE UPDATE ON oauth_grants "
               "FOR EACH ROW EXECUTE FUNCTION set_updated_at()")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) "
                   f"WITH CHECK ({TENANT_PREDICATE})")
    role = _migration_0013()._app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES)} TO {role}")
    for signature, body in FUNCTIONS.items():
        op.execute(body)
        _grant(signature, app_role)
    op.execute(f"DROP FUNCTION {ENTER_SIGNATURE}")  # its result type changes: CREATE OR REPLACE cannot
    op.execute(ENTER_TOKEN)
    _grant(ENTER_SIGNATURE, app_role)


def downgrade(app_role: str = "") -> None:
    op.execute(f"DROP FUNCTION {ENTER_SIGNATURE}")
    op.execute(_migration_0013().ENTER_TOKEN)
    _grant(ENTER_SIGNATURE, app_role)
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    op.drop_index('ix_api_tokens_tenant_grant', table_name='api_tokens')
    op.drop_constraint(op.f('fk_api_tokens_tenant_id_grant_ref_oauth_grants'), 'api_tokens', type_='foreignkey')
    op.drop_column('api_tokens', 'grant_ref')
    op.drop_table('oauth_refresh_tokens')
    op.drop_table('oauth_authorization_codes')
    op.drop_table('oauth_grants')
    op.execute("DELETE FROM api_clients WHERE kind = 'app'")  # their grants and tokens went with the tables above
    op.drop_constraint(op.f('ck_api_clients_secret'), 'api_clients', type_='check')
    op.drop_constraint(op.f('ck_api_clients_kind'), 'api_clients', type_='check')
    op.alter_column('api_clients', 'secret_hash', existing_type=sa.LargeBinary(), nullable=False)
    op.drop_column('api_clients', 'is_public')
    op.drop_column('api_clients', 'redirect_uris')
    op.drop_column('api_clients', 'kind')
