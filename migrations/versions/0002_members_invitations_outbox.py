"""Members and invitations: last-owner guard, invitation lookup by token, email outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

- A deferred constraint trigger keeps at least one active owner per tenant: it
  locks the tenant row, so two concurrent demotions serialise and the second fails.
- `invitation_token_read`: an invitation is readable, before its tenant is
  known, only by a transaction that presents its token hash (app.token_hash).
- `email_outbox`: global table written in the causing transaction.
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TOKEN_PREDICATE = "token_hash = decode(nullif(current_setting('app.token_hash', true), ''), 'hex')"


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.add_column('tenant_invitations', sa.Column('last_sent_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False))
    op.add_column('tenant_invitations', sa.Column('send_count', sa.Integer(), server_default='1', nullable=False))
    op.add_column('tenant_invitations', sa.Column('declined_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tenant_invitations', sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tenant_invitations', sa.Column('cancelled_by', sa.Uuid(), nullable=True))
    op.create_foreign_key(op.f('fk_tenant_invitations_cancelled_by_users'), 'tenant_invitations', 'users', ['cancelled_by'], ['id'], ondelete='SET NULL')
    op.execute(f"CREATE POLICY invitation_token_read ON tenant_invitations FOR SELECT USING ({TOKEN_PREDICATE})")

    op.create_table('email_outbox',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('kind', sa.String(length=50), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=True),
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.Column('status', sa.Enum('pending', 'sent', 'failed', name='outbox_status'), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_outbox')),
    sa.UniqueConstraint('message_id', name=op.f('uq_email_outbox_message_id'))
    )
    op.create_index('ix_email_outbox_created', 'email_outbox', ['created_at'], unique=False)
    op.create_index('ix_email_outbox_due', 'email_outbox', ['status', 'next_attempt_at'], unique=False)

    op.execute("""
        CREATE FUNCTION ensure_tenant_has_owner() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- Serialise owner changes per tenant; a deleted tenant needs no owner.
            PERFORM 1 FROM tenants WHERE id = OLD.tenant_id FOR UPDATE;
            IF NOT FOUND THEN
                RETURN NULL;
            END IF;
            IF NOT EXISTS (SELECT 1 FROM user_tenant_associations
                           WHERE tenant_id = OLD.tenant_id AND role = 'owner' AND status = 'active') THEN
                RAISE EXCEPTION 'tenant % must keep at least one active owner', OLD.tenant_id
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_keeps_an_owner';
            END IF;
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE CONSTRAINT TRIGGER tenant_keeps_an_owner
        AFTER UPDATE OR DELETE ON user_tenant_associations
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
        WHEN (OLD.role = 'owner' AND OLD.status = 'active')
        EXECUTE FUNCTION ensure_tenant_has_owner()""")

    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT, INSERT, UPDATE ON email_outbox TO {role}")


def downgrade(app_role: str = "") -> None:
    role = _app_role(app_role)
    if role:
        op.execute(f"REVOKE ALL ON email_outbox FROM {role}")
    op.execute("DROP TRIGGER tenant_keeps_an_owner ON user_tenant_associations")
    op.execute("DROP FUNCTION ensure_tenant_has_owner()")
    op.drop_index('ix_email_outbox_due', table_name='email_outbox')
    op.drop_index('ix_email_outbox_created', table_name='email_outbox')
    op.drop_table('email_outbox')
    op.execute("DROP TYPE outbox_status")
    op.execute("DROP POLICY invitation_token_read ON tenant_invitations")
    op.drop_constraint(op.f('fk_tenant_invitations_cancelled_by_users'), 'tenant_invitations', type_='foreignkey')
    op.drop_column('tenant_invitations', 'cancelled_by')
    op.drop_column('tenant_invitations', 'cancelled_at')
    op.drop_column('tenant_invitations', 'declined_at')
    op.drop_column('tenant_invitations', 'send_count')
    op.drop_column('tenant_invitations', 'last_sent_at')
