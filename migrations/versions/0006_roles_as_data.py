"""Roles and permissions as data (seeds 003 and 004): the permission catalogue, the system
roles every tenant shares, each tenant's custom roles, and `user_has_permission()`.

- `permissions`, `roles` (system roles) and `role_permissions` are global reference rows:
  the serving role reads them and never writes them. The catalogue mirrors the code's
  `Permission` enum (tests/test_roles.py fails on drift); later migrations add their rows.
- `tenant_roles` and `tenant_role_permissions` are tenant rows (forced RLS, tenant_id in
  every key). A tenant member may also read the custom role they hold in another tenant
  (`tenant_role_holder_read`), so the tenant switcher can name it.
- A membership or an invitation names exactly one role: `role` (a system role) or
  `custom_role_id`, whose foreign key includes tenant_id (another tenant's role cannot be
  named). Deleting a custom role that is held fails until its holders are moved.
- The request-context functions (0005) also return the role's name and permission codes,
  so the permission set costs no extra round trip.
- `portal_tenant_usable(status)` is the one SQL statement of "members may enter a tenant";
  `user_has_permission(user, tenant, resource, action)` is SECURITY INVOKER: it answers within
  what the caller may read under RLS, so it cannot be used to probe other tenants.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 16:20:00
"""
import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

TENANT_PREDICATE = "tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid"
USER_SETTING = "(SELECT nullif(current_setting('app.user_id', true), ''))::uuid"

# name, category, description; in display order. A snapshot of portal.tenancy.permissions at
# this revision (migrations do not import application code).
PERMISSIONS = [
    ("tenant:view", "Organization", "Open the organization and its dashboard"),
    ("sites:view", "Sites", "See sites"),
    ("sites:write", "Sites", "Create, edit, archive and delete sites"),
    ("sites:assign", "Sites", "Assign members to sites"),
    ("sites:see-all", "Sites", "See every site and its devices (otherwise only assigned sites)"),
    ("devices:view", "Devices", "See devices and export them"),
    ("devices:write", "Devices", "Add, edit, move, import and decommission devices"),
    ("devices:status", "Devices", "Change the status of devices they can see"),
    ("members:view", "Members", "See the member list"),
    ("members:manage", "Members", "Change roles, suspend and remove members"),
    ("invitations:manage", "Members", "Invite people and manage invitations"),
    ("roles:manage", "Members", "Create, edit and delete custom roles"),
    ("audit:view", "Audit", "Read the audit log"),
]
READ = ["tenant:view", "sites:view", "devices:view", "members:view"]
ALL = [name for name, _, _ in PERMISSIONS]
SYSTEM_ROLES = [
    ("owner", "Owner", "Full control, including ownership and billing decisions", ALL),
    ("admin", "Admin", "Manages sites, devices, members and roles", ALL),
    ("member", "Member", "Works with the devices at their sites", READ + ["devices:status"]),
    ("viewer", "Viewer", "Reads everything at their sites, changes nothing", READ),
]

USABLE = """
CREATE FUNCTION public.portal_tenant_usable(p_status public.tenant_status) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT p_status IN ('active', 'pending') $$
"""

ENTER_TENANT = """
CREATE FUNCTION public.portal_enter_tenant(p_user_id uuid, p_slug text)
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
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF m_id IS NULL OR NOT public.portal_tenant_usable(t_status) THEN
        RETURN;  -- not a member, or an unusable tenant: nothing about it leaves the database
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

REQUEST_CONTEXT = """
CREATE FUNCTION public.portal_request_context(p_token_hash bytea, p_user_id uuid, p_idle_seconds integer, p_slug text)
RETURNS TABLE (u_email varchar, u_name varchar, u_type user_type, u_email_verified_at timestamptz,
               u_totp_enabled_at timestamptz, u_last_tenant_id uuid, u_password_changed_at timestamptz,
               s_id uuid, s_created_at timestamptz, s_last_seen_at timestamptz, s_expires_at timestamptz,
               s_reauth_at timestamptz,
               t_id uuid, t_name varchar, t_slug varchar, t_type tenant_type, t_status tenant_status,
               t_domain varchar, t_max_users integer, t_settings jsonb, t_created_at timestamptz,
               m_id uuid, m_role membership_role, m_custom_role_id uuid, m_status membership_status,
               m_last_active_at timestamptz, m_accepted_at timestamptz, m_created_at timestamptz,
               r_name varchar, r_permissions text[])
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public AS $$
BEGIN
    SELECT u.email, u.name, u.user_type, u.email_verified_at, u.totp_enabled_at, u.last_tenant_id,
           u.password_changed_at, s.id, s.created_at, s.last_seen_at, s.expires_at, s.reauth_at
      INTO u_email, u_name, u_type, u_email_verified_at, u_totp_enabled_at, u_last_tenant_id,
           u_password_changed_at, s_id, s_created_at, s_last_seen_at, s_expires_at, s_reauth_at
      FROM public.user_sessions s
      JOIN public.users u ON u.id = s.user_id
     WHERE s.token_hash = p_token_hash AND u.id = p_user_id AND u.is_active
       AND s.revoked_at IS NULL AND s.expires_at > now()
       AND s.last_seen_at > now() - make_interval(secs => p_idle_seconds);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM set_config('app.user_id', p_user_id::text, true);
    IF p_slug IS NOT NULL THEN
        SELECT e.* INTO t_id, t_name, t_slug, t_type, t_status, t_domain, t_max_users, t_settings, t_created_at,
                         m_id, m_role, m_custom_role_id, m_status, m_last_active_at, m_accepted_at, m_created_at,
                         r_name, r_permissions
          FROM public.portal_enter_tenant(p_user_id, p_slug) e;
    END IF;
    RETURN NEXT;
END
$$
"""

# Seed 003's function. STABLE and SECURITY INVOKER: it reads under the caller's row-level
# security, so it answers for the tenant the caller has entered (or the caller's own
# memberships), and false for anything the caller may not read.
HAS_PERMISSION = """
CREATE FUNCTION public.user_has_permission(p_user_id uuid, p_tenant_id uuid, p_resource text, p_action text)
RETURNS boolean LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $$
    SELECT EXISTS (
        SELECT 1
          FROM public.user_tenant_associations m
          JOIN public.tenants t ON t.id = m.tenant_id
         WHERE m.user_id = p_user_id AND m.tenant_id = p_tenant_id AND m.status = 'active'
           AND public.portal_tenant_usable(t.status)
           AND CASE WHEN m.custom_role_id IS NULL THEN EXISTS (
                        SELECT 1 FROM public.role_permissions rp
                         WHERE rp.role = m.role AND rp.permission = p_resource || ':' || p_action)
                    ELSE EXISTS (
                        SELECT 1 FROM public.tenant_role_permissions rp
                         WHERE rp.tenant_id = m.tenant_id AND rp.role_id = m.custom_role_id
                           AND rp.permission = p_resource || ':' || p_action) END)
$$
"""

FUNCTIONS = {
    "public.portal_tenant_usable(public.tenant_status)": USABLE,
    "public.portal_enter_tenant(uuid, text)": ENTER_TENANT,
    "public.portal_request_context(bytea, uuid, integer, text)": REQUEST_CONTEXT,
    "public.user_has_permission(uuid, uuid, text, text)": HAS_PERMISSION,
}
ROLE_COLUMNS = {"user_tenant_associations": "fk_user_tenant_associations_custom_role",
                "tenant_invitations": "fk_tenant_invitations_custom_role"}


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.create_table('permissions',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('resource', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.CheckConstraint("name = resource || ':' || action", name=op.f('ck_permissions_name_is_resource_action')),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_permissions'))
    )
    op.create_table('roles',
    sa.Column('key', sa.Enum('owner', 'admin', 'member', 'viewer', name='membership_role', create_type=False), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_roles'))
    )
    op.create_table('role_permissions',
    sa.Column('role', sa.Enum('owner', 'admin', 'member', 'viewer', name='membership_role', create_type=False), nullable=False),
    sa.Column('permission', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['permission'], ['permissions.name'], name=op.f('fk_role_permissions_permission_permissions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['role'], ['roles.key'], name=op.f('fk_role_permissions_role_roles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('role', 'permission', name=op.f('pk_role_permissions'))
    )
    op.create_table('tenant_roles',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('description', sa.String(length=300), server_default='', nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_tenant_roles_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tenant_roles_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_tenant_roles'))
    )
    op.create_index('uq_tenant_roles_name', 'tenant_roles', ['tenant_id', sa.literal_column('lower(name)')], unique=True)
    op.create_table('tenant_role_permissions',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('role_id', sa.Uuid(), nullable=False),
    sa.Column('permission', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['permission'], ['permissions.name'], name=op.f('fk_tenant_role_permissions_permission_permissions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'role_id'], ['tenant_roles.tenant_id', 'tenant_roles.id'], name=op.f('fk_tenant_role_permissions_tenant_id_role_id_tenant_roles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tenant_role_permissions_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'role_id', 'permission', name=op.f('pk_tenant_role_permissions'))
    )
    for table, fk in ROLE_COLUMNS.items():
        op.add_column(table, sa.Column('custom_role_id', sa.Uuid(), nullable=True))
        op.alter_column(table, 'role', existing_type=sa.Enum(name='membership_role'), nullable=True,
                        server_default=None)
        op.create_foreign_key(fk, table, 'tenant_roles', ['tenant_id', 'custom_role_id'], ['tenant_id', 'id'])
        op.create_check_constraint(op.f(f'ck_{table}_one_role'), table, 'num_nonnulls(role, custom_role_id) = 1')
    op.create_index('ix_user_tenant_associations_tenant_custom_role', 'user_tenant_associations',
                    ['tenant_id', 'custom_role_id'], unique=False)
    op.create_index('ix_tenant_invitations_tenant_custom_role', 'tenant_invitations',
                    ['tenant_id', 'custom_role_id'], unique=False)

    catalogue = sa.table('permissions', *(sa.column(c) for c in
                                          ('name', 'resource', 'action', 'category', 'description', 'position')))
    op.bulk_insert(catalogue, [
        {"name": name, "resource": name.split(":")[0], "action": name.split(":")[1], "category": category,
         "description": description, "position": i} for i, (name, category, description) in enumerate(PERMISSIONS)])
    roles = sa.table('roles', sa.column('key'), sa.column('name'), sa.column('description'), sa.column('position'))
    op.bulk_insert(roles, [{"key": key, "name": name, "description": description, "position": i}
                           for i, (key, name, description, _) in enumerate(SYSTEM_ROLES)])
    grants = sa.table('role_permissions', sa.column('role'), sa.column('permission'))
    op.bulk_insert(grants, [{"role": key, "permission": p} for key, _, _, held in SYSTEM_ROLES for p in held])

    op.execute("CREATE TRIGGER trg_tenant_roles_updated_at BEFORE UPDATE ON tenant_roles "
               "FOR EACH ROW EXECUTE FUNCTION set_updated_at()")
    for table in ("tenant_roles", "tenant_role_permissions"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) "
                   f"WITH CHECK ({TENANT_PREDICATE})")
    # The tenant switcher names the custom role a user holds in each of their tenants.
    op.execute(f"""CREATE POLICY tenant_role_holder_read ON tenant_roles FOR SELECT USING (
        (tenant_id, id) IN (SELECT m.tenant_id, m.custom_role_id FROM user_tenant_associations m
                             WHERE m.user_id = {USER_SETTING}))""")

    for signature in ("public.portal_request_context(bytea, uuid, integer, text)",
                      "public.portal_enter_tenant(uuid, text)"):
        op.execute(f"DROP FUNCTION {signature}")
    for signature, body in FUNCTIONS.items():
        op.execute(body)
        # Functions are executable by PUBLIC by default; only the serving role needs these.
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")

    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT ON permissions, roles, role_permissions TO {role}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_roles, tenant_role_permissions TO {role}")
        for signature in FUNCTIONS:
            op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {role}")


def _previous_functions():
    """Migration 0005's function definitions, restored by the downgrade."""
    path = Path(__file__).with_name("0005_request_context_functions.py")
    spec = importlib.util.spec_from_file_location("migration_0005", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade(app_role: str = "") -> None:
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    op.execute("DROP POLICY tenant_role_holder_read ON tenant_roles")
    # Custom roles cannot be expressed before this revision: their holders become members.
    for table in ROLE_COLUMNS:
        op.execute(f"UPDATE {table} SET role = 'member', custom_role_id = NULL WHERE role IS NULL")
    op.drop_index('ix_tenant_invitations_tenant_custom_role', table_name='tenant_invitations')
    op.drop_index('ix_user_tenant_associations_tenant_custom_role', table_name='user_tenant_associations')
    for table, fk in ROLE_COLUMNS.items():
        op.drop_constraint(op.f(f'ck_{table}_one_role'), table, type_='check')
        op.drop_constraint(fk, table, type_='foreignkey')
        op.drop_column(table, 'custom_role_id')
        op.alter_column(table, 'role', existing_type=sa.Enum(name='membership_role'), nullable=False,
                        server_default='member')
    op.drop_table('tenant_role_permissions')
    op.drop_index('uq_tenant_roles_name', table_name='tenant_roles')
    op.drop_table('tenant_roles')
    op.drop_table('role_permissions')
    op.drop_table('roles')
    op.drop_table('permissions')
    previous = _previous_functions()
    op.execute(previous.ENTER_TENANT)
    op.execute(previous.REQUEST_CONTEXT)
    for signature in previous.FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    role = _app_role(app_role)
    if role:
        for signature in previous.FUNCTIONS:
            op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {role}")
