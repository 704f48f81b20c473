"""Request context in one round trip: the session, its user, the tenant of the URL and the
user's membership, and the RLS settings for the rest of the transaction.

Two SQL functions, SECURITY INVOKER (the default): they run as the serving role, under the
same row-level security as the statements they replace, in the same order:

- `portal_enter_tenant(user_id, slug)`: the tenant by slug and the user's active membership
  in it, read through `membership_self_read` (app.user_id must be set). Only when the
  membership exists and the tenant is usable does it set app.tenant_id and plan_cache_mode
  and return a row; otherwise no row and nothing set.
- `portal_request_context(token_hash, user_id, idle_seconds, slug)`: the valid session
  record and its active user; sets app.user_id only then, and only then enters the tenant.
  No row means no valid session (and nothing was set).

The statements in a PL/pgSQL function run one after another, so each setting is in force
for the statements after it; a single SQL statement gives no such order. The functions pin
their search_path (which restores only search_path on exit: the app.* settings stay for the
rest of the transaction).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 00:40:00
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

ENTER_TENANT = """
CREATE FUNCTION public.portal_enter_tenant(p_user_id uuid, p_slug text)
RETURNS TABLE (t_id uuid, t_name varchar, t_slug varchar, t_type tenant_type, t_status tenant_status,
               t_domain varchar, t_max_users integer, t_settings jsonb, t_created_at timestamptz,
               m_id uuid, m_role membership_role, m_status membership_status,
               m_last_active_at timestamptz, m_accepted_at timestamptz, m_created_at timestamptz)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public AS $$
BEGIN
    -- Whatever happens below, no earlier tenant stays in force.
    PERFORM set_config('app.tenant_id', '', true);
    SELECT tn.id, tn.name, tn.slug, tn.type, tn.status, tn.domain, tn.max_users, tn.settings, tn.created_at,
           m.id, m.role, m.status, m.last_active_at, m.accepted_at, m.created_at
      INTO t_id, t_name, t_slug, t_type, t_status, t_domain, t_max_users, t_settings, t_created_at,
           m_id, m_role, m_status, m_last_active_at, m_accepted_at, m_created_at
      FROM public.tenants tn
      LEFT JOIN public.user_tenant_associations m
        ON m.tenant_id = tn.id AND m.user_id = p_user_id AND m.status = 'active'
     WHERE tn.slug = p_slug;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF m_id IS NULL OR t_status NOT IN ('active', 'pending') THEN
        RETURN;  -- not a member, or an unusable tenant: nothing about it leaves the database
    END IF;
    PERFORM set_config('app.tenant_id', t_id::text, true);
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
               m_id uuid, m_role membership_role, m_status membership_status,
               m_last_active_at timestamptz, m_accepted_at timestamptz, m_created_at timestamptz)
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
                         m_id, m_role, m_status, m_last_active_at, m_accepted_at, m_created_at
          FROM public.portal_enter_tenant(p_user_id, p_slug) e;
    END IF;
    RETURN NEXT;
END
$$
"""

FUNCTIONS = ["public.portal_request_context(bytea, uuid, integer, text)", "public.portal_enter_tenant(uuid, text)"]


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.execute(ENTER_TENANT)
    op.execute(REQUEST_CONTEXT)
    for function in FUNCTIONS:
        # Functions are executable by PUBLIC by default; only the serving role needs these.
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    role = _app_role(app_role)
    if role:
        for function in FUNCTIONS:
            op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {role}")


def downgrade(app_role: str = "") -> None:
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}")
