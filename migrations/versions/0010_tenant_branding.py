"""Tenant branding (issue 13): the logo an owner uploaded, re-encoded, one per tenant.

The accent colour and the logo's version live in `tenants.settings['branding']` (the row every
tenant request already reads, so the header costs no statement); the image bytes live here and
are read only by the logo route.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 19:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.create_table('tenant_logos',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('media_type', sa.String(length=16), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("media_type IN ('image/png', 'image/jpeg', 'image/webp')", name=op.f('ck_tenant_logos_media_type_known')),
    sa.CheckConstraint('octet_length(content) <= 262144', name=op.f('ck_tenant_logos_content_small')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tenant_logos_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_tenant_logos'))
    )
    op.execute("ALTER TABLE tenant_logos ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tenant_logos FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY tenant_isolation ON tenant_logos USING "
               "(tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid) WITH CHECK "
               "(tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid)")
    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_logos TO {role}")


def downgrade(app_role: str = "") -> None:
    op.drop_table('tenant_logos')
