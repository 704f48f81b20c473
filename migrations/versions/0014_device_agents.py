"""Device agents (issue 15, seed 003): agent credentials, agent tasks and their results, the
agents:manage and agents:run permissions, and the one door an agent's request enters by.

- `agent_credentials`, `agent_tasks`, `agent_results`: tenant rows (forced RLS, tenant_id in
  every key and foreign key).
- `portal_agent_credential(secret_hash)`: SECURITY DEFINER, because the request knows only the
  secret, not the tenant. It answers for a live credential of a device in a usable tenant only,
  and then sets app.tenant_id for the rest of the transaction (as portal_enter_tenant does for
  a person), so everything after it runs under the tenant's RLS. EXECUTE is revoked from PUBLIC.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 19:40:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

TENANT_PREDICATE = "tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid"
TABLES = ("agent_credentials", "agent_tasks", "agent_results")

# name, resource, action, category, description (a snapshot of portal.tenancy.permissions)
PERMISSIONS = [
    ("agents:manage", "agents", "manage", "Agents",
     "Give devices agent credentials, rotate and revoke them; run custom commands"),
    ("agents:run", "agents", "run", "Agents",
     "Send commands to the agents of devices they can see and read the results"),
]
GRANTS = [("owner", "agents:manage"), ("owner", "agents:run"), ("admin", "agents:manage"), ("admin", "agents:run"),
          ("member", "agents:run")]

CREDENTIAL = """
CREATE FUNCTION public.portal_agent_credential(p_secret_hash bytea)
RETURNS TABLE (a_tenant_id uuid, a_device_id uuid, a_credential_id uuid, a_gateway boolean,
               a_device_name varchar, a_device_status device_status)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    -- Whatever happens below, no earlier tenant stays in force.
    PERFORM set_config('app.tenant_id', '', true);
    SELECT c.tenant_id, c.device_id, c.id, c.gateway, d.name, d.status
      INTO a_tenant_id, a_device_id, a_credential_id, a_gateway, a_device_name, a_device_status
      FROM public.agent_credentials c
      JOIN public.tenants t ON t.id = c.tenant_id
      JOIN public.devices d ON d.tenant_id = c.tenant_id AND d.id = c.device_id
     WHERE c.secret_hash = p_secret_hash AND c.revoked_at IS NULL
       AND public.portal_tenant_usable(t.status);
    IF NOT FOUND THEN
        RETURN;  -- unknown, revoked, or a tenant that is not in use: nothing leaves the database
    END IF;
    PERFORM set_config('app.tenant_id', a_tenant_id::text, true);
    RETURN NEXT;
END
$$
"""


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    for name, resource, action, category, description in PERMISSIONS:
        op.execute(sa.text("INSERT INTO permissions (name, resource, action, category, description, position) "
                           "SELECT :n, :r, :a, :c, :d, max(position) + 1 FROM permissions").bindparams(
            n=name, r=resource, a=action, c=category, d=description))
    for role, permission in GRANTS:
        op.execute(sa.text("INSERT INTO role_permissions (role, permission) VALUES (CAST(:r AS membership_role), :p)").bindparams(
            r=role, p=permission))

    command = postgresql.ENUM('reboot', 'update_firmware', 'collect_diagnostics', 'custom', name='agent_command')
    status = postgresql.ENUM('queued', 'running', 'succeeded', 'failed', 'expired', 'cancelled',
                             name='agent_task_status')
    command.create(op.get_bind())
    status.create(op.get_bind())
    command = postgresql.ENUM(name='agent_command', create_type=False)
    status = postgresql.ENUM(name='agent_task_status', create_type=False)

    op.create_table('agent_credentials',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('device_id', sa.Uuid(), nullable=False),
    sa.Column('secret_hash', sa.LargeBinary(), nullable=False),
    sa.Column('gateway', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('octet_length(secret_hash) = 32', name=op.f('ck_agent_credentials_secret_hash_sha256')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_agent_credentials_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id', 'device_id'], ['devices.tenant_id', 'devices.id'], name=op.f('fk_agent_credentials_tenant_id_device_id_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_agent_credentials_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_agent_credentials')),
    sa.UniqueConstraint('tenant_id', 'secret_hash', name=op.f('uq_agent_credentials_tenant_id_secret_hash'))
    )
    op.create_index('ix_agent_credentials_secret_hash', 'agent_credentials', ['secret_hash'], unique=False)
    op.create_index('uq_agent_credentials_live_device', 'agent_credentials', ['tenant_id', 'device_id'], unique=True,
                    postgresql_where=sa.text('revoked_at IS NULL'))

    op.create_table('agent_tasks',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('device_id', sa.Uuid(), nullable=False),
    sa.Column('command', command, nullable=False),
    sa.Column('parameters', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('status', status, server_default='queued', nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('expires_at > created_at', name=op.f('ck_agent_tasks_expires_after_created')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_agent_tasks_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id', 'device_id'], ['devices.tenant_id', 'devices.id'], name=op.f('fk_agent_tasks_tenant_id_device_id_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_agent_tasks_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_agent_tasks'))
    )
    op.create_index('ix_agent_tasks_tenant_device_queue', 'agent_tasks', ['tenant_id', 'device_id', 'created_at'],
                    unique=False, postgresql_where=sa.text("status = 'queued'"))
    op.create_index('ix_agent_tasks_tenant_device_created', 'agent_tasks', ['tenant_id', 'device_id', 'created_at'],
                    unique=False)
    op.create_index('ix_agent_tasks_tenant_open_expires', 'agent_tasks', ['tenant_id', 'expires_at'], unique=False,
                    postgresql_where=sa.text("status IN ('queued', 'running')"))

    op.create_table('agent_results',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('status', status, nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('output', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('log', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'task_id'], ['agent_tasks.tenant_id', 'agent_tasks.id'], name=op.f('fk_agent_results_tenant_id_task_id_agent_tasks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_agent_results_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_agent_results')),
    sa.UniqueConstraint('tenant_id', 'task_id', name=op.f('uq_agent_results_tenant_id_task_id'))
    )

    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) "
                   f"WITH CHECK ({TENANT_PREDICATE})")
    op.execute(CREDENTIAL)
    op.execute("REVOKE ALL ON FUNCTION public.portal_agent_credential(bytea) FROM PUBLIC")
    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES)} TO {role}")
        op.execute(f"GRANT EXECUTE ON FUNCTION public.portal_agent_credential(bytea) TO {role}")


def downgrade(app_role: str = "") -> None:
    op.execute("DROP FUNCTION public.portal_agent_credential(bytea)")
    op.drop_table('agent_results')
    op.drop_index('ix_agent_tasks_tenant_open_expires', table_name='agent_tasks')
    op.drop_index('ix_agent_tasks_tenant_device_created', table_name='agent_tasks')
    op.drop_index('ix_agent_tasks_tenant_device_queue', table_name='agent_tasks')
    op.drop_table('agent_tasks')
    op.drop_index('uq_agent_credentials_live_device', table_name='agent_credentials')
    op.drop_index('ix_agent_credentials_secret_hash', table_name='agent_credentials')
    op.drop_table('agent_credentials')
    op.execute("DROP TYPE agent_task_status")
    op.execute("DROP TYPE agent_command")
    op.execute("DELETE FROM permissions WHERE name IN ('agents:manage', 'agents:run')")  # grants cascade
