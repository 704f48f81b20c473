"""Several roles per member (issue 26, seed 003's `user_roles`, seed 004's `TenantUsers.roles[]`).

- A membership keeps its base role (`role` or `custom_role_id`, exactly one: the owner rules
  stay on it) and may hold any number of further custom roles in `user_roles`. System roles
  nest (owner > admin > member > viewer), so holding two of them would mean the higher one:
  a member holds at most one, plus custom roles. Permissions are the union.
- Invitations carry the further roles they will give (`extra_role_ids`); roles deleted since
  are skipped at acceptance.
- `portal_member_permissions(...)`: the union, in one place (user_has_permission);
  `portal_member_roles(...)`: the names and the union for `portal_enter_tenant` and
  `portal_api_enter_token` (one read of the grants for a member with one role).
- `portal_enter_tenant` sets app.tenant_id to the nil id until it has entered the tenant (a
  tenant URL that may not be entered reads nothing), and also sets `app.permissions` (comma-separated codes, reads only in an
  archived tenant, empty when no tenant is entered) for the transaction: the write policies
  check it. It clears it first, whatever happens.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 09:00:00
"""
import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

TENANT_PREDICATE = "tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid"
USER_SETTING = "(SELECT nullif(current_setting('app.user_id', true), ''))::uuid"

# The custom roles the transaction's user holds, base or further, in every tenant.
HELD = f"""SELECT m.tenant_id, m.custom_role_id FROM user_tenant_associations m WHERE m.user_id = {USER_SETTING}
           UNION ALL
           SELECT ur.tenant_id, ur.role_id FROM user_roles ur
             JOIN user_tenant_associations m ON m.tenant_id = ur.tenant_id AND m.id = ur.membership_id
            WHERE m.user_id = {USER_SETTING}"""

# plpgsql, not SQL: a SQL function that cannot be inlined is parsed and planned at every call
# (the union and the names cost 2.5 ms a request that way); plpgsql keeps its plans per connection
# (0.16 ms).
MEMBER_PERMISSIONS = """
CREATE FUNCTION public.portal_member_permissions(p_tenant_id uuid, p_membership_id uuid,
                                                 p_role membership_role, p_custom_role_id uuid)
RETURNS text[] LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public AS $$
BEGIN
    RETURN ARRAY(
        SELECT rp.permission FROM public.role_permissions rp WHERE rp.role = p_role
        UNION
        SELECT trp.permission FROM public.tenant_role_permissions trp
         WHERE trp.tenant_id = p_tenant_id
           AND (trp.role_id = p_custom_role_id
                OR trp.role_id IN (SELECT ur.role_id FROM public.user_roles ur
                                    WHERE ur.tenant_id = p_tenant_id AND ur.membership_id = p_membership_id))
        ORDER BY 1);
END
$$
"""

MEMBER_ROLES = """
CREATE FUNCTION public.portal_member_roles(p_tenant_id uuid, p_membership_id uuid, p_role membership_role,
                                           p_custom_role_id uuid, OUT r_name varchar, OUT r_permissions text[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public AS $$
DECLARE
    v_further varchar;
BEGIN
    -- The base role first, then the further roles by name: "Viewer + Field technician".
    IF p_role IS NOT NULL THEN
        SELECT r.name INTO r_name FROM public.roles r WHERE r.key = p_role;
    ELSE
        SELECT r.name INTO r_name FROM public.tenant_roles r WHERE r.tenant_id = p_tenant_id AND r.id = p_custom_role_id;
    END IF;
    SELECT string_agg(r.name, ' + ' ORDER BY lower(r.name)) INTO v_further
      FROM public.user_roles ur JOIN public.tenant_roles r ON r.tenant_id = ur.tenant_id AND r.id = ur.role_id
     WHERE ur.tenant_id = p_tenant_id AND ur.membership_id = p_membership_id;
    IF v_further IS NULL THEN  -- one role (most members): its grants, one indexed read
        IF p_role IS NOT NULL THEN
            r_permissions := ARRAY(SELECT rp.permission FROM public.role_permissions rp WHERE rp.role = p_role
                                    ORDER BY rp.permission);
        ELSE
            r_permissions := ARRAY(SELECT rp.permission FROM public.tenant_role_permissions rp
                                    WHERE rp.tenant_id = p_tenant_id AND rp.role_id = p_custom_role_id
                                    ORDER BY rp.permission);
        END IF;
    ELSE
        r_name := r_name || ' + ' || v_further;
        r_permissions := public.portal_member_permissions(p_tenant_id, p_membership_id, p_role, p_custom_role_id);
    END IF;
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
    -- Whatever happens below, no earlier tenant or permission set stays in force. Until the
    -- tenant is entered, the nil id: a tenant URL reads its tenant or nothing (never the user's
    -- organizations, which only pages outside tenants read: policy member_read).
    PERFORM set_config('app.tenant_id', '00000000-0000-0000-0000-000000000000', true);
    PERFORM set_config('app.permissions', '', true);
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
    -- The roles and the union of their permissions, read under the tenant just entered.
    SELECT * INTO r_name, r_permissions FROM public.portal_member_roles(t_id, m_id, m_role, m_custom_role_id);
    -- What the write policies check (portal_may): in an archived tenant, what reads only.
    PERFORM set_config('app.permissions', array_to_string(ARRAY(
        SELECT p FROM unnest(r_permissions) p
         WHERE public.portal_tenant_usable(t_status) OR split_part(p, ':', 2) IN ('view', 'see-all')), ','), true);
    -- Tenants differ in size by orders of magnitude: a generic plan assumes an average tenant
    -- and can be 50x slower for a big one. Set last, so the lookups above keep cached plans.
    PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    RETURN NEXT;
END
$$
"""

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
           AND p_resource || ':' || p_action
               = ANY (public.portal_member_permissions(m.tenant_id, m.id, m.role, m.custom_role_id)))
$$
"""

OLD_TOKEN_ROLE = """            IF m_custom_role_id IS NULL THEN
                SELECT r.name, ARRAY(SELECT rp.permission FROM public.role_permissions rp WHERE rp.role = r.key)
                  INTO r_name, r_permissions FROM public.roles r WHERE r.key = m_role;
            ELSE
                SELECT r.name, ARRAY(SELECT rp.permission FROM public.tenant_role_permissions rp
                                      WHERE rp.tenant_id = r.tenant_id AND rp.role_id = r.id)
                  INTO r_name, r_permissions FROM public.tenant_roles r
                 WHERE r.tenant_id = t_id AND r.id = m_custom_role_id;
            END IF;"""
NEW_TOKEN_ROLE = """            SELECT * INTO r_name, r_permissions
              FROM public.portal_member_roles(t_id, m_id, m_role, m_custom_role_id);"""

NEW_FUNCTIONS = {"public.portal_member_permissions(uuid, uuid, public.membership_role, uuid)": MEMBER_PERMISSIONS,
                 "public.portal_member_roles(uuid, uuid, public.membership_role, uuid)": MEMBER_ROLES}


def _module(name: str):
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _token_function(new: bool) -> str:
    body = _module("0022_oauth.py").ENTER_TOKEN.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    assert OLD_TOKEN_ROLE in body
    return body.replace(OLD_TOKEN_ROLE, NEW_TOKEN_ROLE) if new else body


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.create_table(
        "user_roles",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("membership_id", sa.Uuid(), nullable=False),
        sa.Column("role_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "membership_id"], ["user_tenant_associations.tenant_id",
                                                                 "user_tenant_associations.id"],
                                name="fk_user_roles_membership", ondelete="CASCADE"),
        # Deleting a custom role takes it from those who hold it as a further role (their base
        # role stays; roles.services audits who lost it).
        sa.ForeignKeyConstraint(["tenant_id", "role_id"], ["tenant_roles.tenant_id", "tenant_roles.id"],
                                name="fk_user_roles_role", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_user_roles_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "membership_id", "role_id", name=op.f("pk_user_roles")),
    )
    op.create_index("ix_user_roles_tenant_role", "user_roles", ["tenant_id", "role_id"])
    op.add_column("tenant_invitations", sa.Column("extra_role_ids", postgresql.ARRAY(sa.Uuid()),
                                                  server_default=sa.text("'{}'"), nullable=False))
    op.execute("ALTER TABLE user_roles ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE user_roles FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON user_roles USING ({TENANT_PREDICATE}) "
               f"WITH CHECK ({TENANT_PREDICATE})")
    # As membership_self_read: a person reads the roles they hold, in every tenant (the switcher).
    op.execute(f"""CREATE POLICY user_roles_holder_read ON user_roles FOR SELECT USING (
        (tenant_id, membership_id) IN (SELECT m.tenant_id, m.id FROM user_tenant_associations m
                                        WHERE m.user_id = {USER_SETTING}))""")
    op.execute("DROP POLICY tenant_role_holder_read ON tenant_roles")
    op.execute(f"CREATE POLICY tenant_role_holder_read ON tenant_roles FOR SELECT USING ((tenant_id, id) IN ({HELD}))")
    # With only app.user_id set (seed 003), user_has_permission answers for the roles the user holds.
    op.execute(f"CREATE POLICY tenant_role_holder_read ON tenant_role_permissions FOR SELECT "
               f"USING ((tenant_id, role_id) IN ({HELD}))")

    for signature, body in NEW_FUNCTIONS.items():
        op.execute(body)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute(ENTER_TENANT)
    op.execute(HAS_PERMISSION)
    op.execute(_token_function(True))

    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON user_roles TO {role}")
        for signature in NEW_FUNCTIONS:
            op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {role}")


def downgrade(app_role: str = "") -> None:  # noqa: ARG001
    previous = _module("0009_plans_and_tenant_lifecycle.py")
    op.execute(previous.ENTER_TENANT)
    op.execute(previous.HAS_PERMISSION)
    op.execute(_token_function(False))
    for signature in NEW_FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    op.execute("DROP POLICY tenant_role_holder_read ON tenant_role_permissions")
    op.execute("DROP POLICY tenant_role_holder_read ON tenant_roles")
    op.execute(f"""CREATE POLICY tenant_role_holder_read ON tenant_roles FOR SELECT USING (
        (tenant_id, id) IN (SELECT m.tenant_id, m.custom_role_id FROM user_tenant_associations m
                             WHERE m.user_id = {USER_SETTING}))""")
    # Further roles cannot be expressed before this revision: their holders keep the base role.
    op.drop_column("tenant_invitations", "extra_role_ids")
    op.drop_table("user_roles")
