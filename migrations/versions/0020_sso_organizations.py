"""Per-organization single sign-on (issue 25).

- `sso_connections`: a tenant's OpenID providers (issuer, client id, sealed client secret,
  enabled, default role for just-in-time members, invitations only, owner by mapping).
- `sso_domains`: email domains a tenant claims, verified by a DNS TXT record, optionally
  requiring single sign-on for their accounts.
- `sso_group_mappings`: provider group -> role (and sites) per connection.
- `sso_identities`: an account's link to a connection's subject (keycloak_id per organization).
- Two narrow SECURITY DEFINER doors, the only reads of these rows across tenants:
  `portal_sso_domain_route(domain)` (home-realm discovery and the password refusal at /login:
  the usable tenant that has the domain verified, whether it requires single sign-on, and its
  first enabled connection) and `portal_sso_domain_holder(domain)` (which tenant, if any, has it
  verified: the "at most one organization" rule, checked under a per-domain advisory lock).
  Why not a unique index on the domain: it would not hold tenant_id, which every unique key of a
  tenant table does here (distribution by tenant_id), and the rule is only about verified rows.
- Permission `sso:manage` (owners by default), last in the catalogue.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 06:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

TENANT_PREDICATE = "tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid"
TABLES = ("sso_connections", "sso_domains", "sso_group_mappings", "sso_identities")

DOMAIN_ROUTE = """
CREATE FUNCTION public.portal_sso_domain_route(p_domain text)
RETURNS TABLE (t_id uuid, t_slug varchar, t_name varchar, d_require_sso boolean, c_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT tn.id, tn.slug, tn.name, d.require_sso,
           (SELECT c.id FROM public.sso_connections c
             WHERE c.tenant_id = d.tenant_id AND c.enabled ORDER BY c.created_at, c.id LIMIT 1)
      FROM public.sso_domains d JOIN public.tenants tn ON tn.id = d.tenant_id
     WHERE d.domain = lower(p_domain) AND d.verified_at IS NOT NULL AND public.portal_tenant_usable(tn.status)
     ORDER BY d.verified_at LIMIT 1
$$
"""

DOMAIN_HOLDER = """
CREATE FUNCTION public.portal_sso_domain_holder(p_domain text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT d.tenant_id FROM public.sso_domains d
     WHERE d.domain = lower(p_domain) AND d.verified_at IS NOT NULL ORDER BY d.verified_at LIMIT 1
$$
"""
FUNCTIONS = ("public.portal_sso_domain_route(text)", "public.portal_sso_domain_holder(text)")


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=f'fk_{table}_tenant_id_tenants',
                                   ondelete='CASCADE')


def _connection_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(['tenant_id', 'connection_id'], ['sso_connections.tenant_id', 'sso_connections.id'],
                                   name=f'fk_{table}_tenant_id_connection_id_sso_connections', ondelete='CASCADE')


def upgrade(app_role: str = "") -> None:
    op.execute("INSERT INTO permissions (name, resource, action, category, description, position) "
               "SELECT 'sso:manage', 'sso', 'manage', 'Organization', "
               "'Set up single sign-on: connections, verified domains, group mappings', "
               "max(position) + 1 FROM permissions")
    op.execute("INSERT INTO role_permissions (role, permission) VALUES ('owner', 'sso:manage')")
    op.create_table('sso_connections',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('issuer', sa.String(length=500), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=False),
    sa.Column('client_secret', sa.LargeBinary(), nullable=True),
    sa.Column('enabled', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('default_role', sa.String(length=64), server_default='member', nullable=False),
    sa.Column('invitations_only', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('owner_by_mapping', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name='fk_sso_connections_created_by_users',
                            ondelete='SET NULL'),
    _tenant_fk('sso_connections'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name='pk_sso_connections')
    )
    op.create_index('ix_sso_connections_tenant_name', 'sso_connections', ['tenant_id', 'name'], unique=False)
    op.create_table('sso_domains',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('check_error', sa.String(length=300), nullable=True),
    sa.Column('lost_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('require_sso', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name='fk_sso_domains_created_by_users', ondelete='SET NULL'),
    _tenant_fk('sso_domains'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name='pk_sso_domains'),
    sa.UniqueConstraint('tenant_id', 'domain', name='uq_sso_domains_tenant_id_domain')
    )
    op.create_index('ix_sso_domains_domain', 'sso_domains', ['domain'], unique=False)
    op.create_table('sso_group_mappings',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('connection_id', sa.Uuid(), nullable=False),
    sa.Column('group_name', sa.String(length=500), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=True),
    sa.Column('role_key', sa.String(length=64), nullable=False),
    sa.Column('site_ids', postgresql.ARRAY(sa.Uuid()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    _connection_fk('sso_group_mappings'),
    _tenant_fk('sso_group_mappings'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name='pk_sso_group_mappings'),
    sa.UniqueConstraint('tenant_id', 'connection_id', 'group_name',
                        name='uq_sso_group_mappings_tenant_id_connection_id_group_name')
    )
    op.create_table('sso_identities',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('connection_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('groups', postgresql.ARRAY(sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_sign_in_at', sa.DateTime(timezone=True), nullable=True),
    _connection_fk('sso_identities'),
    _tenant_fk('sso_identities'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='fk_sso_identities_user_id_users', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name='pk_sso_identities'),
    sa.UniqueConstraint('tenant_id', 'connection_id', 'subject',
                        name='uq_sso_identities_tenant_id_connection_id_subject')
    )
    op.create_index('ix_sso_identities_tenant_user', 'sso_identities', ['tenant_id', 'user_id'], unique=False)
    for table in ("sso_connections", "sso_domains"):
        op.execute(f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION set_updated_at()")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) "
                   f"WITH CHECK ({TENANT_PREDICATE})")
    op.execute(DOMAIN_ROUTE)
    op.execute(DOMAIN_HOLDER)
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
    op.drop_index('ix_sso_identities_tenant_user', table_name='sso_identities')
    op.drop_table('sso_identities')
    op.drop_table('sso_group_mappings')
    op.drop_index('ix_sso_domains_domain', table_name='sso_domains')
    op.drop_table('sso_domains')
    op.drop_index('ix_sso_connections_tenant_name', table_name='sso_connections')
    op.drop_table('sso_connections')
    op.execute("DELETE FROM permissions WHERE name = 'sso:manage'")  # grants cascade
