"""Notifications (issue 14): per-user rows and preferences, and the one door that writes them.

- `notifications` and `notification_preferences` belong to a user, not a tenant: row-level
  security on app.user_id (a user reads and changes only their own, whatever tenant the request
  is in). An event of a tenant names it in `about_tenant_id` (nullable: a sign-in has none; the
  column is not called tenant_id because these are not tenant tables, see docs/isolation.md).
- The serving role may not INSERT notifications: `portal_notify` (SECURITY DEFINER) writes one
  row per recipient in one statement, reading each recipient's preference (which RLS hides
  from the actor), and answers with the recipients to email at once. It refuses a tenant other
  than the transaction's and only writes to that tenant's active members.
- `portal_digest_users()` names (ids only) the users with a digest preference, for the daily job,
  which then reads each user's notifications as that user.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 19:55:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

OWN = "(user_id = (SELECT nullif(current_setting('app.user_id', true), ''))::uuid)"

NOTIFY = """
CREATE FUNCTION public.portal_notify(p_tenant uuid, p_kind text, p_params jsonb, p_link text,
                                     p_default text, p_forced boolean, p_users uuid[])
RETURNS TABLE (user_id uuid, email varchar)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF p_tenant IS NOT NULL
       AND p_tenant IS DISTINCT FROM nullif(current_setting('app.tenant_id', true), '')::uuid THEN
        RAISE EXCEPTION 'portal_notify: notifications of a tenant are written inside that tenant';
    END IF;
    RETURN QUERY
    WITH r AS (
        SELECT u.id, u.email,
               CASE WHEN p_forced THEN p_default ELSE coalesce(p.channel, p_default) END AS channel
          FROM public.users u
          LEFT JOIN public.notification_preferences p ON p.user_id = u.id AND p.kind = p_kind
         WHERE u.id = ANY (p_users) AND u.is_active
           AND (p_tenant IS NULL OR EXISTS (
                SELECT 1 FROM public.user_tenant_associations m
                 WHERE m.tenant_id = p_tenant AND m.user_id = u.id AND m.status = 'active'))
    ), written AS (
        INSERT INTO public.notifications (user_id, about_tenant_id, kind, params, link)
        SELECT r.id, p_tenant, p_kind, coalesce(p_params, '{}'::jsonb), p_link
          FROM r WHERE r.channel IN ('portal', 'both', 'digest')
    )
    SELECT r.id, r.email FROM r WHERE r.channel IN ('email', 'both');
END
$$
"""

DIGEST_USERS = """
CREATE FUNCTION public.portal_digest_users() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT DISTINCT user_id FROM public.notification_preferences WHERE channel = 'digest'
$$
"""


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.create_table('notifications',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('about_tenant_id', sa.Uuid(), nullable=True),
    sa.Column('kind', sa.String(length=50), nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('link', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['about_tenant_id'], ['tenants.id'], name=op.f('fk_notifications_about_tenant_id_tenants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notifications_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    op.create_index('ix_notifications_about_tenant', 'notifications', ['about_tenant_id'], unique=False)
    op.create_index('ix_notifications_unread', 'notifications', ['user_id'], unique=False,
                    postgresql_where=sa.text('read_at IS NULL'))
    op.create_index('ix_notifications_user_created', 'notifications', ['user_id', 'created_at', 'id'], unique=False)
    op.create_table('notification_preferences',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=50), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("channel IN ('portal', 'email', 'both', 'digest', 'none')", name=op.f('ck_notification_preferences_channel_known')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notification_preferences_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'kind', name=op.f('pk_notification_preferences'))
    )
    for table in ('notifications', 'notification_preferences'):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY user_own ON {table} USING {OWN} WITH CHECK {OWN}")
    op.execute(NOTIFY)
    op.execute(DIGEST_USERS)
    op.execute("REVOKE ALL ON FUNCTION public.portal_notify(uuid, text, jsonb, text, text, boolean, uuid[]) FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION public.portal_digest_users() FROM PUBLIC")
    role = _app_role(app_role)
    if role:
        # No INSERT on notifications: they are written through portal_notify only.
        op.execute(f"GRANT SELECT, UPDATE, DELETE ON notifications TO {role}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON notification_preferences TO {role}")
        op.execute(f"GRANT EXECUTE ON FUNCTION public.portal_notify(uuid, text, jsonb, text, text, boolean, uuid[]), "
                   f"public.portal_digest_users() TO {role}")


def downgrade(app_role: str = "") -> None:
    op.execute("DROP FUNCTION public.portal_digest_users()")
    op.execute("DROP FUNCTION public.portal_notify(uuid, text, jsonb, text, text, boolean, uuid[])")
    op.drop_table('notification_preferences')
    op.drop_index('ix_notifications_user_created', table_name='notifications')
    op.drop_index('ix_notifications_unread', table_name='notifications', postgresql_where=sa.text('read_at IS NULL'))
    op.drop_index('ix_notifications_about_tenant', table_name='notifications')
    op.drop_table('notifications')
