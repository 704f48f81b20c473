"""Email that fails for good says why and reaches whoever sent it (issue 21).

- `email_outbox.failure` ('unbuildable', 'refused', 'exhausted') and `failed_at`: set when a
  message fails for good; /metrics counts them by reason.
- `email_outbox.about_tenant_id`, `about_id`, `sender_id`: the tenant and row a message concerns
  (an invitation) and the user who caused it, so a failure shows on that row and is told to the
  sender. Plain ids, no foreign keys: the outbox is a log that outlives what it names.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade(app_role: str = "") -> None:
    op.add_column('email_outbox', sa.Column('failure', sa.String(length=20), nullable=True))
    op.add_column('email_outbox', sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('email_outbox', sa.Column('about_tenant_id', sa.Uuid(), nullable=True))
    op.add_column('email_outbox', sa.Column('about_id', sa.Uuid(), nullable=True))
    op.add_column('email_outbox', sa.Column('sender_id', sa.Uuid(), nullable=True))
    op.create_check_constraint(op.f('ck_email_outbox_failure_known'), 'email_outbox',
                               "failure IN ('unbuildable', 'refused', 'exhausted')")
    op.create_index('ix_email_outbox_about', 'email_outbox', ['about_id'], unique=False,
                    postgresql_where=sa.text('about_id IS NOT NULL'))
    op.create_index('ix_email_outbox_failure', 'email_outbox', ['failure'], unique=False,
                    postgresql_where=sa.text('failure IS NOT NULL'))
    # Messages that failed before this revision: the reason as their last error tells it.
    op.execute("""
        UPDATE email_outbox SET failed_at = coalesce(next_attempt_at, created_at),
               failure = CASE WHEN last_error ~ '^SMTP[A-Za-z]*: SMTP 5[0-9][0-9]' THEN 'refused'
                              WHEN last_error LIKE 'ValueError:%' THEN 'unbuildable'
                              ELSE 'exhausted' END
         WHERE status = 'failed'""")


def downgrade(app_role: str = "") -> None:
    op.drop_index('ix_email_outbox_failure', table_name='email_outbox')
    op.drop_index('ix_email_outbox_about', table_name='email_outbox')
    op.drop_constraint(op.f('ck_email_outbox_failure_known'), 'email_outbox', type_='check')
    op.drop_column('email_outbox', 'sender_id')
    op.drop_column('email_outbox', 'about_id')
    op.drop_column('email_outbox', 'about_tenant_id')
    op.drop_column('email_outbox', 'failed_at')
    op.drop_column('email_outbox', 'failure')
