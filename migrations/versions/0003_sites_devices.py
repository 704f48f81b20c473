"""Sites and devices workspace: device sort/search keys and their tenant-leading indexes.

- `name_key`, `serial_key`: lower-cased name and serial in the "C" collation, generated
  by PostgreSQL. Byte order is the same on every server, so a search prefix becomes an
  index range on (tenant_id, name_key) or (tenant_id, serial_key) without pg_trgm.
- Serial numbers become unique per tenant regardless of case (on `serial_key`).
- `last_seen_key`: last_seen_at with "never" as the epoch, so the "last seen" sort pages
  by keyset without NULL special cases.
- The device list's indexes are rebuilt on those keys, one per sort and filter, each
  leading with tenant_id and ending with id (the keyset tie-breaker).

No new tables: sites, user_site_assignments and devices keep the RLS policies of 0001.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

NEW_INDEXES = {
    "ix_devices_tenant_name_key": ["tenant_id", "name_key", "id"],
    "ix_devices_tenant_site_name_key": ["tenant_id", "site_id", "name_key", "id"],
    "ix_devices_tenant_status_name_key": ["tenant_id", "status", "name_key", "id"],
    "ix_devices_tenant_type_name_key": ["tenant_id", "type", "name_key", "id"],
    "ix_devices_tenant_last_seen_key": ["tenant_id", "last_seen_key", "id"],
}
OLD_INDEXES = {
    "ix_devices_tenant_name": ["tenant_id", "name", "id"],
    "ix_devices_tenant_site_name": ["tenant_id", "site_id", "name", "id"],
    "ix_devices_tenant_status": ["tenant_id", "status", "name", "id"],
    "ix_devices_tenant_last_seen": ["tenant_id", "last_seen_at", "id"],
}


def upgrade(app_role: str = "") -> None:
    # app_role: no new tables, so no new grants (0001 granted the serving role on devices).
    op.add_column('devices', sa.Column('name_key', sa.String(length=200, collation='C'),
                                       sa.Computed('lower((name)::text)', persisted=True), nullable=False))
    op.add_column('devices', sa.Column('serial_key', sa.String(length=100, collation='C'),
                                       sa.Computed('lower((serial_number)::text)', persisted=True), nullable=False))
    op.add_column('devices', sa.Column('last_seen_key', sa.DateTime(timezone=True),
                                       sa.Computed("COALESCE(last_seen_at, '1970-01-01 00:00:00+00'::timestamp with time zone)", persisted=True),
                                       nullable=False))
    op.drop_constraint('uq_devices_tenant_id_serial_number', 'devices', type_='unique')
    op.create_unique_constraint(op.f('uq_devices_tenant_id_serial_key'), 'devices', ['tenant_id', 'serial_key'])
    for name in OLD_INDEXES:
        op.drop_index(name, table_name='devices')
    for name, columns in NEW_INDEXES.items():
        op.create_index(name, 'devices', columns, unique=False)


def downgrade(app_role: str = "") -> None:
    for name in NEW_INDEXES:
        op.drop_index(name, table_name='devices')
    for name, columns in OLD_INDEXES.items():
        op.create_index(name, 'devices', columns, unique=False)
    op.drop_constraint(op.f('uq_devices_tenant_id_serial_key'), 'devices', type_='unique')
    # Fails, as it should, if serials differing only in case were created meanwhile.
    op.create_unique_constraint('uq_devices_tenant_id_serial_number', 'devices', ['tenant_id', 'serial_number'])
    op.drop_column('devices', 'last_seen_key')
    op.drop_column('devices', 'serial_key')
    op.drop_column('devices', 'name_key')
