"""Tamper-evident audit trail: a SHA-256 hash chain per tenant, prune checkpoints, and the
account security events (seed 004) that belong to no tenant.

Every audit row gets `seq` (its position in its tenant's chain, 1, 2, 3, ...), `prev_hash`
(the previous row's `row_hash`; 32 zero bytes for the first row, the checkpoint's hash after
a prune) and `row_hash` = SHA-256(prev_hash || canonical content). The canonical content
(version "portal-audit-v1") is documented in portal/audit/chain.py, which recomputes it
independently of this SQL for `flask audit verify`.

- `audit_canonical(row)`: the canonical text of a row.
- `audit_append(tenant, rows jsonb)`: the one writer. It takes a transaction-scoped advisory
  lock on the tenant (concurrent writers queue; the chain never forks), reads the head
  (the last row, else the checkpoint, else the genesis hash) and inserts the rows chained.
  SECURITY INVOKER: it runs as the serving role, under RLS, with its INSERT privilege.
- `audit_checkpoints`: per tenant, the last pruned row (seq, row_hash), so a chain whose
  beginning was pruned still verifies.
- `audit_prune(tenant, before)`: deletes the oldest part of a tenant's chain, in chain order:
  the rows up to (not including) the first row written at or after `before`, and moves the
  checkpoint to the last deleted row. SECURITY DEFINER (the owner deletes; the serving role
  never may), only for the tenant of the transaction, never rows younger than 90 days
  (seed 003's minimum), under the same advisory lock as the writer.
- Existing rows are chained here, per tenant, in (created_at, id) order.
- `security_events`: sign-ins, password and email changes, two-factor, sessions, single sign-on,
  disabled accounts; with severity, IP, user agent and request id. A global table under forced
  RLS: the serving role inserts any (a failed sign-in may have no user), reads a user's own
  (app.user_id), and every row only when app.user_id is an active system admin
  (`security_events_admin_read`, the one cross-user path). Never updated or deleted by it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 16:20:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

TENANT_PREDICATE = "tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid"
GENESIS = "'\\x" + "00" * 32 + "'::bytea"
USER_PREDICATE = "user_id = (SELECT nullif(current_setting('app.user_id', true), ''))::uuid"
ADMIN_PREDICATE = ("EXISTS (SELECT 1 FROM public.users u WHERE u.id = (SELECT nullif(current_setting('app.user_id', "
                   "true), ''))::uuid AND u.user_type = 'system_admin' AND u.is_active)")

FIELD = """
CREATE FUNCTION public.audit_field(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v IS NULL THEN '-' ELSE octet_length(v)::text || ':' || v END || E'\\n'
$$
"""

# No SET search_path on these two: a SQL function with a SET clause is never inlined, and the
# per-call settings cost 0.3 ms a row (10,000 rows took 3.5 s). Every name is schema-qualified
# instead (pg_catalog is searched first in any case).
CANONICAL = """
CREATE FUNCTION public.audit_canonical(a public.audit_logs) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT public.audit_field('portal-audit-v1') || public.audit_field(a.tenant_id::text)
        || public.audit_field(a.seq::text) || public.audit_field(a.id::text)
        || public.audit_field(to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
        || public.audit_field(a.user_id::text) || public.audit_field(a.action) || public.audit_field(a.resource_type)
        || public.audit_field(a.resource_id) || public.audit_field(a.before::text) || public.audit_field(a.after::text)
        || public.audit_field(a.details::text) || public.audit_field(a.ip_address::text)
        || public.audit_field(a.user_agent) || public.audit_field(a.request_id)
$$
"""

APPEND = f"""
CREATE FUNCTION public.audit_append(p_tenant uuid, p_rows jsonb) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public AS $$
DECLARE
    v_seq bigint;
    v_hash bytea;
    v_rows public.audit_logs[];
    v_texts text[];
    v_prev bytea[] := '{{}}';
    v_next bytea[] := '{{}}';
BEGIN
    -- One writer per tenant at a time, until this transaction ends: the chain never forks.
    PERFORM pg_advisory_xact_lock(hashtextextended('portal.audit_logs:' || p_tenant::text, 0));
    SELECT l.seq, l.row_hash INTO v_seq, v_hash
      FROM public.audit_logs l WHERE l.tenant_id = p_tenant ORDER BY l.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        SELECT c.seq, c.row_hash INTO v_seq, v_hash FROM public.audit_checkpoints c WHERE c.tenant_id = p_tenant;
        IF NOT FOUND THEN
            v_seq := 0;
            v_hash := {GENESIS};
        END IF;
    END IF;
    -- The rows as they will be stored (set-based), and their canonical texts in chain order.
    SELECT array_agg(r ORDER BY r.seq), array_agg(public.audit_canonical(r) ORDER BY r.seq)
      INTO v_rows, v_texts
      FROM jsonb_array_elements(p_rows) WITH ORDINALITY AS e(value, n),
           LATERAL jsonb_populate_record(NULL::public.audit_logs, e.value || jsonb_build_object(
               'tenant_id', p_tenant, 'seq', v_seq + e.n, 'created_at', now(),
               'id', coalesce(e.value->>'id', gen_random_uuid()::text),
               'details', coalesce(e.value->'details', '{{}}'::jsonb))) AS r;
    IF v_rows IS NULL THEN
        RETURN v_seq;
    END IF;
    -- Only the links are sequential: one SHA-256 per row.
    FOR i IN 1 .. array_length(v_texts, 1) LOOP
        v_prev := v_prev || v_hash;
        v_hash := sha256(v_hash || convert_to(v_texts[i], 'UTF8'));
        v_next := v_next || v_hash;
    END LOOP;
    INSERT INTO public.audit_logs (tenant_id, id, seq, created_at, user_id, action, resource_type, resource_id,
                                   before, after, details, ip_address, user_agent, request_id, prev_hash, row_hash)
    SELECT u.tenant_id, u.id, u.seq, u.created_at, u.user_id, u.action, u.resource_type, u.resource_id,
           u.before, u.after, u.details, u.ip_address, u.user_agent, u.request_id, v_prev[u.ordinality], v_next[u.ordinality]
      FROM unnest(v_rows) WITH ORDINALITY AS u;
    RETURN v_seq + array_length(v_texts, 1);
END
$$
"""

PRUNE = """
CREATE FUNCTION public.audit_prune(p_tenant uuid, p_before timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    v_keep_from bigint;
    v_last bigint;
    v_hash bytea;
    v_count bigint;
BEGIN
    IF p_tenant IS DISTINCT FROM nullif(current_setting('app.tenant_id', true), '')::uuid THEN
        RAISE EXCEPTION 'audit_prune: % is not the tenant of this transaction', p_tenant;
    END IF;
    IF p_before > now() - interval '90 days' THEN
        RAISE EXCEPTION 'audit_prune: audit rows are kept at least 90 days';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('portal.audit_logs:' || p_tenant::text, 0));
    SELECT min(seq) INTO v_keep_from FROM public.audit_logs WHERE tenant_id = p_tenant AND created_at >= p_before;
    IF v_keep_from IS NULL THEN
        SELECT max(seq) INTO v_last FROM public.audit_logs WHERE tenant_id = p_tenant;
    ELSE
        v_last := v_keep_from - 1;
    END IF;
    SELECT row_hash INTO v_hash FROM public.audit_logs WHERE tenant_id = p_tenant AND seq = v_last;
    IF v_hash IS NULL THEN
        RETURN 0;  -- nothing old enough (or already pruned)
    END IF;
    DELETE FROM public.audit_logs WHERE tenant_id = p_tenant AND seq <= v_last;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    INSERT INTO public.audit_checkpoints AS c (tenant_id, seq, row_hash, pruned_rows, pruned_before, updated_at)
    VALUES (p_tenant, v_last, v_hash, v_count, p_before, now())
    ON CONFLICT (tenant_id) DO UPDATE SET seq = EXCLUDED.seq, row_hash = EXCLUDED.row_hash,
        pruned_rows = c.pruned_rows + EXCLUDED.pruned_rows, pruned_before = EXCLUDED.pruned_before,
        updated_at = now();
    RETURN v_count;
END
$$
"""

# Chain the rows written before this migration, tenant by tenant (the owner sees a tenant's
# rows under FORCE RLS only with app.tenant_id set; no BYPASSRLS needed).
CHAIN_EXISTING = f"""
DO $$
DECLARE
    t uuid;
    a public.audit_logs%ROWTYPE;
    v_seq bigint;
    v_hash bytea;
BEGIN
    FOR t IN SELECT id FROM public.tenants LOOP
        PERFORM set_config('app.tenant_id', t::text, true);
        v_seq := 0;
        v_hash := {GENESIS};
        FOR a IN SELECT * FROM public.audit_logs WHERE tenant_id = t ORDER BY created_at, id LOOP
            v_seq := v_seq + 1;
            a.seq := v_seq;
            a.prev_hash := v_hash;
            a.row_hash := sha256(v_hash || convert_to(public.audit_canonical(a), 'UTF8'));
            UPDATE public.audit_logs SET seq = a.seq, prev_hash = a.prev_hash, row_hash = a.row_hash
             WHERE tenant_id = t AND id = a.id;
            v_hash := a.row_hash;
        END LOOP;
    END LOOP;
    PERFORM set_config('app.tenant_id', '', true);
END
$$
"""


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.add_column('audit_logs', sa.Column('seq', sa.BigInteger(), nullable=True))
    op.add_column('audit_logs', sa.Column('prev_hash', sa.LargeBinary(), nullable=True))
    op.add_column('audit_logs', sa.Column('row_hash', sa.LargeBinary(), nullable=True))
    op.create_table('audit_checkpoints',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('row_hash', sa.LargeBinary(), nullable=False),
    sa.Column('pruned_rows', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('pruned_before', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('octet_length(row_hash) = 32', name=op.f('ck_audit_checkpoints_row_hash_sha256')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_audit_checkpoints_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_audit_checkpoints'))
    )
    op.execute("ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE audit_checkpoints FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON audit_checkpoints USING ({TENANT_PREDICATE}) "
               f"WITH CHECK ({TENANT_PREDICATE})")

    op.execute(FIELD)
    op.execute(CANONICAL)
    op.execute(CHAIN_EXISTING)
    op.alter_column('audit_logs', 'seq', nullable=False)
    op.alter_column('audit_logs', 'prev_hash', nullable=False)
    op.alter_column('audit_logs', 'row_hash', nullable=False)
    op.create_unique_constraint(op.f('uq_audit_logs_tenant_id_seq'), 'audit_logs', ['tenant_id', 'seq'])
    op.create_check_constraint(op.f('ck_audit_logs_row_hash_sha256'), 'audit_logs',
                               'octet_length(row_hash) = 32 AND octet_length(prev_hash) = 32')
    op.execute(APPEND)
    op.execute(PRUNE)

    op.create_table('security_events',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('email', sa.String(length=320), server_default='', nullable=False),
    sa.Column('event', sa.String(length=50), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('ip_address', postgresql.INET(), nullable=True),
    sa.Column('user_agent', sa.String(length=500), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("severity IN ('info', 'warning', 'critical')", name=op.f('ck_security_events_severity_known')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_security_events_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_events'))
    )
    op.create_index('ix_security_events_user', 'security_events', ['user_id', 'created_at'], unique=False)
    op.create_index('ix_security_events_created', 'security_events', ['created_at', 'id'], unique=False)
    op.create_index('ix_security_events_event', 'security_events', ['event', 'created_at'], unique=False)
    op.execute("ALTER TABLE security_events ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE security_events FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY security_events_self_read ON security_events FOR SELECT USING ({USER_PREDICATE})")
    op.execute(f"CREATE POLICY security_events_admin_read ON security_events FOR SELECT USING ({ADMIN_PREDICATE})")
    op.execute("CREATE POLICY security_events_insert ON security_events FOR INSERT WITH CHECK (true)")

    functions = ["public.audit_field(text)", "public.audit_canonical(public.audit_logs)",
                 "public.audit_append(uuid, jsonb)", "public.audit_prune(uuid, timestamptz)"]
    for function in functions:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    role = _app_role(app_role)
    if role:
        for function in functions:
            op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {role}")
        op.execute(f"GRANT SELECT ON audit_checkpoints TO {role}")
        op.execute(f"GRANT SELECT, INSERT ON security_events TO {role}")


def downgrade(app_role: str = "") -> None:
    role = _app_role(app_role)
    if role:
        op.execute(f"REVOKE ALL ON audit_checkpoints FROM {role}")
        op.execute(f"REVOKE ALL ON security_events FROM {role}")
    op.drop_index('ix_security_events_event', table_name='security_events')
    op.drop_index('ix_security_events_created', table_name='security_events')
    op.drop_index('ix_security_events_user', table_name='security_events')
    op.drop_table('security_events')
    op.execute("DROP FUNCTION public.audit_prune(uuid, timestamptz)")
    op.execute("DROP FUNCTION public.audit_append(uuid, jsonb)")
    op.execute("DROP FUNCTION public.audit_canonical(public.audit_logs)")
    op.execute("DROP FUNCTION public.audit_field(text)")
    op.drop_constraint(op.f('ck_audit_logs_row_hash_sha256'), 'audit_logs', type_='check')
    op.drop_constraint(op.f('uq_audit_logs_tenant_id_seq'), 'audit_logs', type_='unique')
    op.drop_column('audit_logs', 'row_hash')
    op.drop_column('audit_logs', 'prev_hash')
    op.drop_column('audit_logs', 'seq')
    op.drop_table('audit_checkpoints')
