"""Seed 003's "users automatically see only their org's data" (issue 26).

With only `app.user_id` set (no tenant entered: pages outside tenants, seed 003's
setting of the current user, done here with set_config('app.user_id', ..., true) per
transaction, never a session-level SET), the tables seed 003 names (memberships, user_roles, agent_tasks,
agent_results, audit_logs) answer for every organization the user belongs to and no other: policy `member_read` on each, a SELECT policy that applies only when no
tenant is entered, for the tenants where the user is an active member holding the table's
reading permission (`portal_member_tenants(permission)`: readable tenants, not pending deletion,
reading permissions only in a read-only tenant, as user_has_permission answers).

With a tenant entered, nothing changes: `tenant_isolation` alone decides, as before.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 10:00:00
"""
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

# Seed 003's tables, as the portal names them -> the permission that reads it (its page's).
# Not sites, devices or tasks (seed 003 has none): a second permissive policy is OR-ed into every
# plan of the table, and the device list at 100,000 devices turned from an ordered index scan
# (0.26 ms) into a sort of the whole tenant (108 ms) with one on devices and sites (bench).
READS = {"user_tenant_associations": "members:view", "user_roles": "members:view", "agent_tasks": "agents:run",
         "agent_results": "agents:run", "audit_logs": "audit:view"}

MEMBER_TENANTS = """
CREATE FUNCTION public.portal_member_tenants(p_permission text) RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    -- Definer: it reads the user's memberships across tenants, which the policies that call it
    -- guard (reading them as the invoker would recurse). Only the transaction's own user.
    SELECT coalesce(array_agg(m.tenant_id), '{}')
      FROM public.user_tenant_associations m
      JOIN public.tenants t ON t.id = m.tenant_id
     WHERE m.user_id = nullif(current_setting('app.user_id', true), '')::uuid
       AND m.status = 'active' AND t.status <> 'pending_deletion'
       AND (public.portal_tenant_usable(t.status)
            OR (public.portal_tenant_readable(t.status) AND split_part(p_permission, ':', 2) IN ('view', 'see-all')))
       AND p_permission = ANY (public.portal_member_permissions(m.tenant_id, m.id, m.role, m.custom_role_id))
$$
"""
SIGNATURE = "public.portal_member_tenants(text)"
# "No tenant entered", written so the planner estimates it rare (a parameter IS NULL: 0.005) and
# plans each table's reads as it did without the policy; true at run time only outside tenants.
NO_TENANT = "(SELECT CASE WHEN nullif(current_setting('app.tenant_id', true), '') IS NOT NULL THEN true END) IS NULL"


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.execute(MEMBER_TENANTS)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {role}")
    for table, permission in READS.items():
        op.execute(f"CREATE POLICY member_read ON {table} FOR SELECT USING ({NO_TENANT} AND "
                   f"tenant_id = ANY ((SELECT public.portal_member_tenants('{permission}'))::uuid[]))")


def downgrade(app_role: str = "") -> None:  # noqa: ARG001
    for table in READS:
        op.execute(f"DROP POLICY member_read ON {table}")
    op.execute(f"DROP FUNCTION {SIGNATURE}")
