"""Integrations (issue 23, seed 002): the `integrations` table, its delivery and sync log, the
webhook ids an inbound integration has seen, API clients' own limit, per-tenant features, and
the integrations:view / integrations:manage permissions.

- `integrations` (tenant rows, forced RLS): provider, config (jsonb), credentials sealed with the
  tenant's data key (portal.keys), status PENDING/ACTIVE/ERROR/DISABLED, enabled, last_sync_at,
  sync_status, sync_error, and the delivery/sync state (cursor, failures in a row for the
  circuit breaker, next scheduled sync).
- `integration_log` (tenant rows): one row per outbound delivery, sync run or inbound batch,
  with redacted, truncated request and response heads and bodies.
- `integration_inbound_ids` (tenant rows): webhook-ids an inbound integration accepted, so a
  replayed message is refused.
- `portal_integration_inbound(id)` (SECURITY DEFINER): the tenant of an inbound integration of a
  usable tenant, by the id in its URL alone (the request knows nothing else), and it sets
  app.tenant_id for the rest of the transaction, as portal_agent_credential does.
- `portal_integrations_due(limit)` (SECURITY DEFINER): JSON sources whose scheduled sync is due,
  across tenants, for the worker's periodic job (ids only; the job enters each tenant).
- `plans.max_api_clients` / `tenants.max_api_clients`: API clients had been counted against
  max_integrations; they get a limit of their own (the same numbers), and max_integrations now
  counts integrations. `tenants.features` (seed 002): features a tenant has on top of its plan's.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 06:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

TENANT_PREDICATE = "tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid"
TABLES = ("integrations", "integration_log", "integration_inbound_ids")
PERMISSIONS = [
    ("integrations:view", "integrations", "view", "Integrations",
     "See integrations, their status and their delivery and sync log"),
    ("integrations:manage", "integrations", "manage", "Integrations",
     "Create, change, enable, disable and delete integrations; replace their credentials; replay deliveries"),
]
GRANTS = [("owner", "integrations:view"), ("owner", "integrations:manage"), ("admin", "integrations:view"),
          ("admin", "integrations:manage")]
# Which plans include which providers (a tenant's own features add to these).
PLAN_FEATURES = {"starter": ["webhooks"], "pro": ["webhooks", "json_source", "inbound_events"],
                 "enterprise": ["webhooks", "json_source", "inbound_events"]}

INBOUND = """
CREATE FUNCTION public.portal_integration_inbound(p_id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    found uuid;
BEGIN
    PERFORM set_config('app.tenant_id', '', true);
    SELECT i.tenant_id INTO found
      FROM public.integrations i JOIN public.tenants t ON t.id = i.tenant_id
     WHERE i.id = p_id AND i.provider = 'inbound' AND public.portal_tenant_usable(t.status);
    IF found IS NOT NULL THEN
        PERFORM set_config('app.tenant_id', found::text, true);
    END IF;
    RETURN found;
END
$$
"""

DUE = """
CREATE FUNCTION public.portal_integrations_due(p_limit integer)
RETURNS TABLE (tenant_id uuid, integration_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT i.tenant_id, i.id FROM public.integrations i JOIN public.tenants t ON t.id = i.tenant_id
     WHERE i.provider = 'json_source' AND i.enabled AND i.next_sync_at <= now()
       AND public.portal_tenant_usable(t.status)
     ORDER BY i.next_sync_at LIMIT least(greatest(p_limit, 1), 1000)
$$
"""


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    # API clients keep the numbers they had under max_integrations.
    for table in ("plans", "tenants"):
        op.add_column(table, sa.Column("max_api_clients", sa.Integer(), server_default="0", nullable=False))
        op.execute(f"UPDATE {table} SET max_api_clients = max_integrations")
    op.create_check_constraint(op.f("ck_plans_max_api_clients_positive"), "plans", "max_api_clients >= 0")
    op.create_check_constraint(op.f("ck_tenants_max_api_clients_positive"), "tenants", "max_api_clients >= 0")
    op.add_column("tenants", sa.Column("features", postgresql.ARRAY(sa.String(length=32)),
                                       server_default=sa.text("'{}'"), nullable=False))
    for plan, features in PLAN_FEATURES.items():
        op.execute(sa.text("UPDATE plans SET features = features || CAST(:f AS varchar(32)[]) WHERE key = :k")
                   .bindparams(f=features, k=plan))

    for name, resource, action, category, description in PERMISSIONS:
        op.execute(sa.text("INSERT INTO permissions (name, resource, action, category, description, position) "
                           "SELECT :n, :r, :a, :c, :d, max(position) + 1 FROM permissions").bindparams(
            n=name, r=resource, a=action, c=category, d=description))
    for role, permission in GRANTS:
        op.execute(sa.text("INSERT INTO role_permissions (role, permission) VALUES (CAST(:r AS membership_role), :p)")
                   .bindparams(r=role, p=permission))

    status = postgresql.ENUM("pending", "active", "error", "disabled", name="integration_status")
    status.create(op.get_bind())
    status = postgresql.ENUM(name="integration_status", create_type=False)
    op.create_table("integrations",
    sa.Column("tenant_id", sa.Uuid(), nullable=False),
    sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("name", sa.String(length=100), nullable=False),
    sa.Column("description", sa.String(length=500), nullable=True),
    sa.Column("provider", sa.String(length=32), nullable=False),
    sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column("credentials", sa.LargeBinary(), nullable=True),
    sa.Column("status", status, server_default="pending", nullable=False),
    sa.Column("enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    sa.Column("last_sync_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("sync_status", sa.String(length=32), nullable=True),
    sa.Column("sync_error", sa.Text(), nullable=True),
    sa.Column("sync_cursor", sa.Text(), nullable=True),
    sa.Column("next_sync_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("failures_in_row", sa.Integer(), server_default="0", nullable=False),
    sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_by", sa.Uuid(), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_integrations_created_by_users"), ondelete="SET NULL"),
    sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_integrations_tenant_id_tenants"), ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_integrations"))
    )
    op.create_index("ix_integrations_tenant_status", "integrations", ["tenant_id", "status"], unique=False)
    op.create_index("ix_integrations_tenant_provider", "integrations", ["tenant_id", "provider"], unique=False)
    op.create_index("ix_integrations_id", "integrations", ["id"], unique=False)
    op.create_index("ix_integrations_due", "integrations", ["next_sync_at"], unique=False,
                    postgresql_where=sa.text("provider = 'json_source' AND enabled"))
    op.execute("CREATE TRIGGER trg_integrations_updated_at BEFORE UPDATE ON integrations "
               "FOR EACH ROW EXECUTE FUNCTION set_updated_at()")

    op.create_table("integration_log",
    sa.Column("tenant_id", sa.Uuid(), nullable=False),
    sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("integration_id", sa.Uuid(), nullable=False),
    sa.Column("kind", sa.String(length=16), nullable=False),
    sa.Column("event_type", sa.String(length=100), nullable=True),
    sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
    sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
    sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("duration_ms", sa.Integer(), nullable=True),
    sa.Column("replay_of", sa.Uuid(), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('delivery', 'test', 'sync', 'inbound')", name=op.f("ck_integration_log_kind")),
    sa.CheckConstraint("state IN ('pending', 'retrying', 'succeeded', 'failed')", name=op.f("ck_integration_log_state")),
    sa.ForeignKeyConstraint(["tenant_id", "integration_id"], ["integrations.tenant_id", "integrations.id"],
                            name=op.f("fk_integration_log_tenant_id_integration_id_integrations"), ondelete="CASCADE"),
    sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_integration_log_tenant_id_tenants"), ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_integration_log"))
    )
    op.create_index("ix_integration_log_tenant_integration_created", "integration_log",
                    ["tenant_id", "integration_id", "created_at", "id"], unique=False)

    op.create_table("integration_inbound_ids",
    sa.Column("tenant_id", sa.Uuid(), nullable=False),
    sa.Column("integration_id", sa.Uuid(), nullable=False),
    sa.Column("webhook_id", sa.String(length=200), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.ForeignKeyConstraint(["tenant_id", "integration_id"], ["integrations.tenant_id", "integrations.id"],
                            name=op.f("fk_integration_inbound_ids_tenant_id_integration_id_integrations"),
                            ondelete="CASCADE"),
    sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_integration_inbound_ids_tenant_id_tenants"),
                            ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("tenant_id", "integration_id", "webhook_id", name=op.f("pk_integration_inbound_ids"))
    )
    op.create_index("ix_integration_inbound_ids_tenant_received", "integration_inbound_ids",
                    ["tenant_id", "received_at"], unique=False)

    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) "
                   f"WITH CHECK ({TENANT_PREDICATE})")
    op.execute(INBOUND)
    op.execute(DUE)
    op.execute("REVOKE ALL ON FUNCTION public.portal_integration_inbound(uuid) FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION public.portal_integrations_due(integer) FROM PUBLIC")
    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES)} TO {role}")
        op.execute(f"GRANT EXECUTE ON FUNCTION public.portal_integration_inbound(uuid), "
                   f"public.portal_integrations_due(integer) TO {role}")


def downgrade(app_role: str = "") -> None:
    op.execute("DROP FUNCTION public.portal_integrations_due(integer)")
    op.execute("DROP FUNCTION public.portal_integration_inbound(uuid)")
    op.drop_index("ix_integration_inbound_ids_tenant_received", table_name="integration_inbound_ids")
    op.drop_table("integration_inbound_ids")
    op.drop_index("ix_integration_log_tenant_integration_created", table_name="integration_log")
    op.drop_table("integration_log")
    op.drop_index("ix_integrations_due", table_name="integrations",
                  postgresql_where=sa.text("provider = 'json_source' AND enabled"))
    op.drop_index("ix_integrations_id", table_name="integrations")
    op.drop_index("ix_integrations_tenant_provider", table_name="integrations")
    op.drop_index("ix_integrations_tenant_status", table_name="integrations")
    op.drop_table("integrations")
    postgresql.ENUM(name="integration_status").drop(op.get_bind())
    op.execute("DELETE FROM permissions WHERE name IN ('integrations:view', 'integrations:manage')")  # grants cascade
    for plan, features in PLAN_FEATURES.items():
        for feature in features:
            op.execute(sa.text("UPDATE plans SET features = array_remove(features, CAST(:f AS varchar(32))) "
                               "WHERE key = :k").bindparams(f=feature, k=plan))
    op.drop_column("tenants", "features")
    op.drop_constraint(op.f("ck_tenants_max_api_clients_positive"), "tenants", type_="check")
    op.drop_constraint(op.f("ck_plans_max_api_clients_positive"), "plans", type_="check")
    op.drop_column("tenants", "max_api_clients")
    op.drop_column("plans", "max_api_clients")
