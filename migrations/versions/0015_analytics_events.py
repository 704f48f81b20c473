"""Analytics events (seed 002), partitioned by month, and their retention per plan.

- `analytics_events` (tenant rows, forced RLS) is `PARTITION BY RANGE (occurred_at)`, one
  partition per calendar month in UTC (`analytics_events_pYYYY_MM`) and a DEFAULT partition
  for a row no month covers yet. Every partition carries the same ENABLE + FORCE row level
  security and tenant policy as the parent (a partition read directly would otherwise show every
  tenant), and the serving role is granted nothing on the partitions: it reaches rows only
  through the parent.
- `portal_analytics_partitions(from, months)` (SECURITY DEFINER, as the owner: the serving role
  may not create tables) creates the missing month partitions, moving any rows of that month out
  of the default partition first; it is idempotent and serialised by an advisory lock.
- `portal_analytics_drop_partitions()` (SECURITY DEFINER) drops the month partitions that ended
  before every plan's retention; younger rows past a tenant's own retention are deleted row by
  row by the job, under the tenant's RLS context.
- `analytics_daily` (tenant rows, forced RLS): events per tenant, UTC day and type, and the day's net
  change in devices online, kept by the same statement that inserts the events; the dashboard's
  charts read it (a few hundred rows) instead of aggregating every event of the last 30 days.
- `plans.analytics_retention_days`; permissions `analytics:view` and `events:write` (owners and admins).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 19:45:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

RETENTION = {"free": 30, "starter": 90, "pro": 365, "enterprise": 730}
POLICY = ("CREATE POLICY tenant_isolation ON public.{table} USING "
          "(tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid) WITH CHECK "
          "(tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid)")

PARTITIONS = """
CREATE FUNCTION public.portal_analytics_partitions(p_from date, p_months integer) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    m date;
    lo timestamptz;
    hi timestamptz;
    part text;
    made integer := 0;
BEGIN
    IF p_months IS NULL OR p_months < 1 OR p_months > 36 THEN
        RAISE EXCEPTION 'months must be between 1 and 36' USING ERRCODE = '22023';
    END IF;
    IF p_from IS NULL OR p_from < current_date - 3660 OR p_from > current_date + 366 THEN
        RAISE EXCEPTION 'the first month must be within ten years back and one year ahead' USING ERRCODE = '22023';
    END IF;
    -- Two workers (or a worker and a migration) never race to create the same month.
    PERFORM pg_advisory_xact_lock(hashtextextended('portal.analytics_partitions', 0));
    FOR i IN 0 .. p_months - 1 LOOP
        m := (date_trunc('month', p_from) + make_interval(months => i))::date;
        part := 'analytics_events_p' || to_char(m, 'YYYY_MM');
        CONTINUE WHEN to_regclass('public.' || part) IS NOT NULL;
        lo := m::timestamp AT TIME ZONE 'UTC';
        hi := (m + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('CREATE TABLE public.%I (LIKE public.analytics_events INCLUDING DEFAULTS)', part);
        -- Rows that arrived before their month existed wait in the default partition: they move
        -- in, or attaching would fail (the owner bypasses RLS to see them; see the notes).
        EXECUTE format('WITH moved AS (DELETE FROM public.analytics_events_default '
                       'WHERE occurred_at >= %L AND occurred_at < %L RETURNING *) '
                       'INSERT INTO public.%I SELECT * FROM moved', lo, hi, part);
        EXECUTE format('ALTER TABLE public.analytics_events ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
                       part, lo, hi);
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', part);
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', part);
        EXECUTE format('CREATE POLICY tenant_isolation ON public.%I USING '
                       '(tenant_id = (SELECT nullif(current_setting(''app.tenant_id'', true), ''''))::uuid) WITH CHECK '
                       '(tenant_id = (SELECT nullif(current_setting(''app.tenant_id'', true), ''''))::uuid)', part);
        made := made + 1;
    END LOOP;
    RETURN made;
END
$$
"""

# Whole months past every plan's retention go at once (DROP TABLE: no dead rows, no vacuum).
DROP_PARTITIONS = """
CREATE FUNCTION public.portal_analytics_drop_partitions() RETURNS text[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    keep_from timestamptz := now() - make_interval(days => (SELECT coalesce(max(analytics_retention_days), 3650)
                                                              FROM public.plans));
    r record;
    dropped text[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('portal.analytics_partitions', 0));
    FOR r IN SELECT c.relname,
                    (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS upper
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'public.analytics_events'::regclass AND c.relname LIKE 'analytics\\_events\\_p%'
    LOOP
        IF r.upper <= keep_from THEN
            EXECUTE format('DROP TABLE public.%I', r.relname);
            dropped := dropped || r.relname::text;
        END IF;
    END LOOP;
    RETURN dropped;
END
$$
"""


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.add_column('plans', sa.Column('analytics_retention_days', sa.Integer(), server_default='30', nullable=False))
    for plan, days in RETENTION.items():
        op.execute(sa.text("UPDATE plans SET analytics_retention_days = :d WHERE key = :k").bindparams(d=days, k=plan))
    op.create_table('analytics_events',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('event_type', sa.String(length=100), nullable=False),
    sa.Column('event_name', sa.String(length=200), nullable=True),
    sa.Column('properties', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('source', sa.String(length=32), server_default='portal', nullable=False),
    sa.Column('source_id', sa.String(length=200), nullable=True),
    sa.Column('actor_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_analytics_events_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'occurred_at', 'id', name=op.f('pk_analytics_events')),
    postgresql_partition_by='RANGE (occurred_at)'
    )
    op.create_table('analytics_daily',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('event_type', sa.String(length=100), nullable=False),
    sa.Column('events', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('online_delta', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_analytics_daily_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'day', 'event_type', name=op.f('pk_analytics_daily'))
    )
    op.create_index('ix_analytics_events_tenant_type', 'analytics_events', ['tenant_id', 'event_type', 'occurred_at'], unique=False)
    op.create_index('ix_analytics_events_tenant_source', 'analytics_events', ['tenant_id', 'source_id'], unique=False,
                    postgresql_where=sa.text('source_id IS NOT NULL'))
    op.execute("CREATE TABLE public.analytics_events_default PARTITION OF public.analytics_events DEFAULT")
    for table in ('analytics_events', 'analytics_events_default', 'analytics_daily'):
        op.execute(f"ALTER TABLE public.{table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE public.{table} FORCE ROW LEVEL SECURITY")
        op.execute(POLICY.format(table=table))
    op.execute(PARTITIONS)
    op.execute(DROP_PARTITIONS)
    op.execute("REVOKE ALL ON FUNCTION public.portal_analytics_partitions(date, integer) FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION public.portal_analytics_drop_partitions() FROM PUBLIC")
    # Last month (sample data, backdated events), this month and two ahead; the job keeps it so.
    op.execute("SELECT public.portal_analytics_partitions((date_trunc('month', now() AT TIME ZONE 'UTC') "
               "- interval '1 month')::date, 4)")
    op.execute("INSERT INTO permissions (name, resource, action, category, description, position) "
               "SELECT 'analytics:view', 'analytics', 'view', 'Analytics', 'See the analytics charts of any event type', "
               "max(position) + 1 FROM permissions")
    op.execute("INSERT INTO permissions (name, resource, action, category, description, position) "
               "SELECT 'events:write', 'events', 'write', 'Analytics', 'Record custom analytics events', "
               "max(position) + 1 FROM permissions")
    op.execute("INSERT INTO role_permissions (role, permission) VALUES ('owner', 'analytics:view'), "
               "('admin', 'analytics:view'), ('owner', 'events:write'), ('admin', 'events:write')")
    role = _app_role(app_role)
    if role:
        # The parent only: partitions stay unreachable to the serving role (and are covered by RLS anyway).
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON analytics_events, analytics_daily TO {role}")
        op.execute(f"GRANT EXECUTE ON FUNCTION public.portal_analytics_partitions(date, integer), "
                   f"public.portal_analytics_drop_partitions() TO {role}")


def downgrade(app_role: str = "") -> None:
    op.execute("DELETE FROM permissions WHERE name IN ('analytics:view', 'events:write')")  # grants cascade
    op.execute("DROP FUNCTION public.portal_analytics_drop_partitions()")
    op.execute("DROP FUNCTION public.portal_analytics_partitions(date, integer)")
    op.drop_index('ix_analytics_events_tenant_source', table_name='analytics_events',
                  postgresql_where=sa.text('source_id IS NOT NULL'))
    op.drop_index('ix_analytics_events_tenant_type', table_name='analytics_events')
    op.drop_table('analytics_events')  # and every partition with it
    op.drop_table('analytics_daily')
    op.drop_column('plans', 'analytics_retention_days')
