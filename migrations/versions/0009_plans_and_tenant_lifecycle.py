"""Plans as data and the tenant lifecycle (seeds 002 and 004).

- `plans` (global reference rows): each plan's limits and features. A tenant names its plan
  and carries its own copy of the limits (set from the plan, overridable per tenant by a
  system admin): max_users (already there), max_sites, max_devices, max_integrations.
- A tenant's status now says how its members get in: active and pending fully, archived and
  pending deletion read-only (the application refuses changes), suspended not at all —
  but a member is told why (status_reason) instead of getting a 404. `portal_enter_tenant`
  returns the row of such a tenant to its members without setting app.tenant_id, so none of
  its data is readable; `portal_tenant_readable(status)` is the SQL of that rule, and
  `user_has_permission` answers for an archived tenant's reading permissions only.
- Deletion: an owner asks, the tenant waits `purge_after` (a grace period) as pending_deletion,
  then `portal_purge_tenant` removes it and leaves a tombstone (`tenant_tombstones`) that
  keeps its slug reserved.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 16:45:00
"""
import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# key, name, users, sites, devices, integrations, features
PLANS = [
    ("free", "Free", 5, 2, 50, 0, []),
    ("starter", "Starter", 10, 5, 500, 2, ["audit_export"]),
    ("pro", "Pro", 50, 50, 10_000, 10, ["sso", "audit_export", "api"]),
    ("enterprise", "Enterprise", 1_000, 1_000, 1_000_000, 100, ["sso", "audit_export", "api"]),
]
# The seeds' tenant types, mapped onto the plans for existing tenants.
TYPE_TO_PLAN = {"enterprise": "enterprise", "standard": "pro", "starter": "starter", "trial": "free", "demo": "free"}

READABLE = """
CREATE FUNCTION public.portal_tenant_readable(p_status public.tenant_status) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT p_status IN ('active', 'pending', 'archived', 'pending_deletion') $$
"""

# A renamed tenant's old address, for 30 days: the new one, but only for an active member of it
# (anyone else gets nothing, the same as for an address that never existed). Also says whether an
# address is taken, by a tenant, a reserved old address or a tombstone, without saying by whom.
REDIRECT = """
CREATE FUNCTION public.portal_slug_redirect(p_user_id uuid, p_slug text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT t.slug FROM public.tenant_slug_redirects r
      JOIN public.tenants t ON t.id = r.tenant_id
      JOIN public.user_tenant_associations m ON m.tenant_id = t.id AND m.user_id = p_user_id AND m.status = 'active'
     WHERE r.old_slug = p_slug AND r.expires_at > now()
$$
"""
SLUG_TAKEN = """
CREATE FUNCTION public.portal_slug_taken(p_slug text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT EXISTS (SELECT 1 FROM public.tenants WHERE slug = p_slug)
        OR EXISTS (SELECT 1 FROM public.tenant_slug_redirects WHERE old_slug = p_slug AND expires_at > now())
        OR EXISTS (SELECT 1 FROM public.tenant_tombstones WHERE slug = p_slug)
$$
"""

# Issue 12: a tenant's audit readers see its members' sign-ins, when its security policy says so.
# SECURITY DEFINER (security events are each user's own under RLS), answering only for the
# transaction's tenant and user: an active member holding audit:view, in a tenant that shares.
MEMBER_SIGNINS = """
CREATE FUNCTION public.portal_member_signins(p_limit integer)
RETURNS TABLE (created_at timestamptz, email varchar, event varchar, severity varchar, ip_address inet,
               user_agent varchar)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT e.created_at, e.email, e.event, e.severity, e.ip_address, e.user_agent
      FROM public.security_events e
      JOIN public.user_tenant_associations m
        ON m.user_id = e.user_id AND m.status = 'active'
       AND m.tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
      JOIN public.tenants t ON t.id = m.tenant_id
     WHERE e.event IN ('signin.success', 'signin.failure', 'signout')
       AND (t.settings -> 'security' ->> 'share_member_signins') = 'true'
       AND public.user_has_permission(nullif(current_setting('app.user_id', true), '')::uuid, t.id, 'audit', 'view')
     ORDER BY e.created_at DESC
     LIMIT least(greatest(p_limit, 1), 500)
$$
"""

# Removes a tenant whose deletion grace period has ended, and only such a tenant: every row of
# it goes (devices first, whose site key RESTRICTs; everything else cascades from tenants) and
# a tombstone keeps its name, its slug (reserved) and who asked. SECURITY DEFINER: the serving
# role may neither delete audit rows nor see other tenants' rows; this one door does both,
# for a tenant that asked and waited, nothing else.
PURGE = """
CREATE FUNCTION public.portal_purge_tenant(p_tenant_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    t public.tenants%ROWTYPE;
BEGIN
    SELECT * INTO t FROM public.tenants WHERE id = p_tenant_id FOR UPDATE;
    IF NOT FOUND OR t.status <> 'pending_deletion' OR t.purge_after IS NULL OR t.purge_after > now() THEN
        RETURN false;
    END IF;
    INSERT INTO public.tenant_tombstones (id, name, slug, requested_by, requested_at, purged_at)
    VALUES (t.id, t.name, t.slug, t.deletion_requested_by, t.deletion_requested_at, now());
    DELETE FROM public.devices WHERE tenant_id = p_tenant_id;
    DELETE FROM public.tenants WHERE id = p_tenant_id;
    RETURN true;
END
$$
"""

ENTER_TENANT = """
CREATE OR REPLACE FUNCTION public.portal_enter_tenant(p_user_id uuid, p_slug text)
RETURNS TABLE (t_id uuid, t_name varchar, t_slug varchar, t_type tenant_type, t_status tenant_status,
               t_domain varchar, t_max_users integer, t_settings jsonb, t_created_at timestamptz,
               m_id uuid, m_role membership_role, m_custom_role_id uuid, m_status membership_status,
               m_last_active_at timestamptz, m_accepted_at timestamptz, m_created_at timestamptz,
               r_name varchar, r_permissions text[])
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public AS $$
BEGIN
    -- Whatever happens below, no earlier tenant stays in force.
    PERFORM set_config('app.tenant_id', '', true);
    SELECT tn.id, tn.name, tn.slug, tn.type, tn.status, tn.domain, tn.max_users, tn.settings, tn.created_at,
           m.id, m.role, m.custom_role_id, m.status, m.last_active_at, m.accepted_at, m.created_at
      INTO t_id, t_name, t_slug, t_type, t_status, t_domain, t_max_users, t_settings, t_created_at,
           m_id, m_role, m_custom_role_id, m_status, m_last_active_at, m_accepted_at, m_created_at
      FROM public.tenants tn
      LEFT JOIN public.user_tenant_associations m
        ON m.tenant_id = tn.id AND m.user_id = p_user_id AND m.status = 'active'
     WHERE tn.slug = p_slug;
    IF NOT FOUND OR m_id IS NULL THEN
        RETURN;  -- not a member: nothing about the tenant leaves the database
    END IF;
    IF NOT public.portal_tenant_readable(t_status) THEN
        -- A member of a suspended tenant learns that it is (the row), and nothing of its data:
        -- no tenant context is set, no permissions are returned.
        RETURN NEXT;
        RETURN;
    END IF;
    PERFORM set_config('app.tenant_id', t_id::text, true);
    -- The role and its permissions, read under the tenant just entered.
    IF m_custom_role_id IS NULL THEN
        SELECT r.name, ARRAY(SELECT rp.permission FROM public.role_permissions rp WHERE rp.role = r.key)
          INTO r_name, r_permissions FROM public.roles r WHERE r.key = m_role;
    ELSE
        SELECT r.name, ARRAY(SELECT rp.permission FROM public.tenant_role_permissions rp
                              WHERE rp.tenant_id = r.tenant_id AND rp.role_id = r.id)
          INTO r_name, r_permissions FROM public.tenant_roles r
         WHERE r.tenant_id = t_id AND r.id = m_custom_role_id;
    END IF;
    -- Tenants differ in size by orders of magnitude: a generic plan assumes an average tenant
    -- and can be 50x slower for a big one. Set last, so the lookups above keep cached plans.
    PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    RETURN NEXT;
END
$$
"""


# As in 0006, but an archived tenant answers for reading permissions only (Permission.reads).
HAS_PERMISSION = """
CREATE OR REPLACE FUNCTION public.user_has_permission(p_user_id uuid, p_tenant_id uuid, p_resource text, p_action text)
RETURNS boolean LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $$
    SELECT EXISTS (
        SELECT 1
          FROM public.user_tenant_associations m
          JOIN public.tenants t ON t.id = m.tenant_id
         WHERE m.user_id = p_user_id AND m.tenant_id = p_tenant_id AND m.status = 'active'
           AND (public.portal_tenant_usable(t.status)
                OR (public.portal_tenant_readable(t.status) AND p_action IN ('view', 'see-all')))
           AND CASE WHEN m.custom_role_id IS NULL THEN EXISTS (
                        SELECT 1 FROM public.role_permissions rp
                         WHERE rp.role = m.role AND rp.permission = p_resource || ':' || p_action)
                    ELSE EXISTS (
                        SELECT 1 FROM public.tenant_role_permissions rp
                         WHERE rp.tenant_id = m.tenant_id AND rp.role_id = m.custom_role_id
                           AND rp.permission = p_resource || ':' || p_action) END)
$$
"""


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


# Joins the catalogue after tenant:view (positions after it move down one); owners only.
NEW_PERMISSION = ("tenant:manage", "Organization", "Change the organization's settings and security policy")


def upgrade(app_role: str = "") -> None:
    op.execute("UPDATE permissions SET position = position + 1 WHERE position > 0")
    op.execute(sa.text("INSERT INTO permissions (name, resource, action, category, description, position) "
                       "VALUES (:n, 'tenant', 'manage', :c, :d, 1)").bindparams(
        n=NEW_PERMISSION[0], c=NEW_PERMISSION[1], d=NEW_PERMISSION[2]))
    op.execute("INSERT INTO role_permissions (role, permission) VALUES ('owner', 'tenant:manage')")
    # The audit log's retention (migration 0008), owners only, last in the catalogue.
    op.execute("INSERT INTO permissions (name, resource, action, category, description, position) "
               "SELECT 'audit:manage', 'audit', 'manage', 'Audit', 'Set how long the audit log is kept', "
               "max(position) + 1 FROM permissions")
    op.execute("INSERT INTO role_permissions (role, permission) VALUES ('owner', 'audit:manage')")
    op.create_table('plans',
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('max_users', sa.Integer(), nullable=False),
    sa.Column('max_sites', sa.Integer(), nullable=False),
    sa.Column('max_devices', sa.Integer(), nullable=False),
    sa.Column('max_integrations', sa.Integer(), nullable=False),
    sa.Column('features', postgresql.ARRAY(sa.String(length=32)), server_default=sa.text("'{}'"), nullable=False),
    sa.CheckConstraint('max_users > 0 AND max_sites >= 0 AND max_devices >= 0 AND max_integrations >= 0', name=op.f('ck_plans_limits_positive')),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_plans'))
    )
    plans = sa.table('plans', *(sa.column(c) for c in ('key', 'name', 'position', 'max_users', 'max_sites',
                                                       'max_devices', 'max_integrations', 'features')))
    op.bulk_insert(plans, [dict(zip(('key', 'name', 'max_users', 'max_sites', 'max_devices', 'max_integrations',
                                     'features'), (k, n, u, s, d, i, f)), position=p)
                           for p, (k, n, u, s, d, i, f) in enumerate(PLANS)])
    op.add_column('tenants', sa.Column('plan', sa.String(length=32), server_default='free', nullable=False))
    op.add_column('tenants', sa.Column('max_sites', sa.Integer(), server_default='2', nullable=False))
    op.add_column('tenants', sa.Column('max_devices', sa.Integer(), server_default='50', nullable=False))
    op.add_column('tenants', sa.Column('max_integrations', sa.Integer(), server_default='0', nullable=False))
    op.add_column('tenants', sa.Column('contact_email', sa.String(length=320), nullable=True))
    op.add_column('tenants', sa.Column('status_reason', sa.String(length=500), nullable=True))
    op.add_column('tenants', sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tenants', sa.Column('deletion_requested_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tenants', sa.Column('deletion_requested_by', sa.Uuid(), nullable=True))
    op.add_column('tenants', sa.Column('purge_after', sa.DateTime(timezone=True), nullable=True))
    op.create_foreign_key(op.f('fk_tenants_deletion_requested_by_users'), 'tenants', 'users',
                          ['deletion_requested_by'], ['id'], ondelete='SET NULL')
    op.create_table('tenant_tombstones',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('slug', sa.String(length=63), nullable=False),
    sa.Column('requested_by', sa.Uuid(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('purged_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['requested_by'], ['users.id'], name=op.f('fk_tenant_tombstones_requested_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenant_tombstones')),
    sa.UniqueConstraint('slug', name=op.f('uq_tenant_tombstones_slug'))
    )
    op.create_foreign_key(op.f('fk_tenants_plan_plans'), 'tenants', 'plans', ['plan'], ['key'])
    op.create_index('ix_tenants_plan', 'tenants', ['plan'], unique=False)
    op.create_check_constraint(op.f('ck_tenants_limits_positive'), 'tenants',
                               'max_sites >= 0 AND max_devices >= 0 AND max_integrations >= 0')
    # Existing tenants get the plan of their type and its limits, keeping their own user limit.
    for kind, plan in TYPE_TO_PLAN.items():
        op.execute(sa.text("UPDATE tenants t SET plan = p.key, max_sites = p.max_sites, max_devices = p.max_devices, "
                           "max_integrations = p.max_integrations FROM plans p "
                           "WHERE p.key = :plan AND t.type = CAST(:kind AS tenant_type)").bindparams(plan=plan, kind=kind))
    op.create_table('tenant_exports',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='queued', nullable=False),
    sa.Column('requested_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('token_hash', sa.LargeBinary(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_tenant_exports_status_known')),
    sa.ForeignKeyConstraint(['requested_by'], ['users.id'], name=op.f('fk_tenant_exports_requested_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tenant_exports_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_tenant_exports'))
    )
    op.create_index('ix_tenant_exports_tenant_created', 'tenant_exports', ['tenant_id', 'created_at'], unique=False)
    op.execute("ALTER TABLE tenant_exports ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tenant_exports FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY tenant_isolation ON tenant_exports USING "
               "(tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid) WITH CHECK "
               "(tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid)")
    op.create_table('tenant_slug_redirects',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('old_slug', sa.String(length=63), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tenant_slug_redirects_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'old_slug', name=op.f('pk_tenant_slug_redirects'))
    )
    # Looked up by the old address before the tenant is known (portal_slug_redirect).
    op.create_index('ix_tenant_slug_redirects_old_slug', 'tenant_slug_redirects', ['old_slug'], unique=False)
    op.execute("ALTER TABLE tenant_slug_redirects ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tenant_slug_redirects FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY tenant_isolation ON tenant_slug_redirects USING "
               "(tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid) WITH CHECK "
               "(tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid)")
    op.execute(REDIRECT)
    op.execute(SLUG_TAKEN)
    op.execute("REVOKE ALL ON FUNCTION public.portal_slug_redirect(uuid, text) FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION public.portal_slug_taken(text) FROM PUBLIC")
    op.execute(READABLE)
    op.execute(ENTER_TENANT)
    op.execute(HAS_PERMISSION)
    op.execute(PURGE)
    op.execute("REVOKE ALL ON FUNCTION public.portal_purge_tenant(uuid) FROM PUBLIC")
    op.execute(MEMBER_SIGNINS)
    op.execute("REVOKE ALL ON FUNCTION public.portal_member_signins(integer) FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION public.portal_tenant_readable(public.tenant_status) FROM PUBLIC")
    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT ON plans, tenant_tombstones TO {role}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_exports, tenant_slug_redirects TO {role}")
        op.execute(f"GRANT EXECUTE ON FUNCTION public.portal_slug_redirect(uuid, text), "
                   f"public.portal_slug_taken(text) TO {role}")
        op.execute(f"GRANT EXECUTE ON FUNCTION public.portal_purge_tenant(uuid) TO {role}")
        op.execute(f"GRANT EXECUTE ON FUNCTION public.portal_member_signins(integer) TO {role}")
        op.execute(f"GRANT EXECUTE ON FUNCTION public.portal_tenant_readable(public.tenant_status) TO {role}")


def downgrade(app_role: str = "") -> None:
    op.execute("DELETE FROM permissions WHERE name IN ('tenant:manage', 'audit:manage')")  # grants cascade
    op.execute("UPDATE permissions SET position = position - 1 WHERE position > 1")
    path = Path(__file__).with_name("0006_roles_as_data.py")
    spec = importlib.util.spec_from_file_location("migration_0006", path)
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    op.execute(previous.ENTER_TENANT.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute(previous.HAS_PERMISSION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute("DROP FUNCTION public.portal_member_signins(integer)")
    op.execute("DROP FUNCTION public.portal_purge_tenant(uuid)")
    op.execute("DROP FUNCTION public.portal_tenant_readable(public.tenant_status)")
    op.drop_table('tenant_tombstones')
    op.execute("DROP FUNCTION public.portal_slug_taken(text)")
    op.execute("DROP FUNCTION public.portal_slug_redirect(uuid, text)")
    op.drop_index('ix_tenant_slug_redirects_old_slug', table_name='tenant_slug_redirects')
    op.drop_table('tenant_slug_redirects')
    op.drop_index('ix_tenant_exports_tenant_created', table_name='tenant_exports')
    op.drop_table('tenant_exports')
    op.drop_constraint(op.f('fk_tenants_deletion_requested_by_users'), 'tenants', type_='foreignkey')
    op.drop_constraint(op.f('ck_tenants_limits_positive'), 'tenants', type_='check')
    op.drop_index('ix_tenants_plan', table_name='tenants')
    op.drop_constraint(op.f('fk_tenants_plan_plans'), 'tenants', type_='foreignkey')
    for column in ('purge_after', 'deletion_requested_by', 'deletion_requested_at', 'status_changed_at', 'status_reason', 'contact_email', 'max_integrations', 'max_devices', 'max_sites', 'plan'):
        op.drop_column('tenants', column)
    op.drop_table('plans')
