"""Job engine: procrastinate's schema (version 3.10.0, vendored in migrations/sql/) and the
serving role's privileges on it.

The worker and the web processes both connect as the serving role: the web process defers jobs
through its own transaction, the worker fetches and finishes them. None of these tables holds
tenant data (no tenant_id): a job carries ids, and its task enters each tenant it works on.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 16:30:00
"""
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

SCHEMA = Path(__file__).resolve().parent.parent / "sql" / "procrastinate-3.10.0.sql"
TABLES = ["procrastinate_jobs", "procrastinate_events", "procrastinate_periodic_defers", "procrastinate_workers"]
SEQUENCES = ["procrastinate_jobs_id_seq", "procrastinate_events_id_seq", "procrastinate_periodic_defers_id_seq",
             "procrastinate_workers_id_seq"]
TYPES = ["procrastinate_job_to_defer_v1", "procrastinate_job_status", "procrastinate_job_event_type"]


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    # The driver's own execute: the file's RAISE messages hold '%', which a bound execute would parse.
    op.get_bind().connection.driver_connection.execute(SCHEMA.read_text())
    op.create_table('job_errors',
    sa.Column('job_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('failed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_job_errors'))
    )
    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES + ['job_errors'])} TO {role}")
        op.execute(f"GRANT USAGE, SELECT ON SEQUENCE {', '.join(SEQUENCES)} TO {role}")
        # /readyz compares the database's revision with the code's.
        op.execute(f"GRANT SELECT ON alembic_version TO {role}")


def downgrade(app_role: str = "") -> None:
    role = _app_role(app_role)
    if role:
        op.execute(f"REVOKE SELECT ON alembic_version FROM {role}")
    op.drop_table('job_errors')
    op.execute(f"DROP TABLE {', '.join(TABLES)} CASCADE")
    functions = op.get_bind().exec_driver_sql(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'public' AND left(p.proname, 14) = 'procrastinate_'").scalars().all()
    for function in functions:
        op.execute(f"DROP FUNCTION {function}")
    op.execute(f"DROP TYPE {', '.join(TYPES)}")
