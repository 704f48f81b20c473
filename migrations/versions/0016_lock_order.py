"""One lock order (portal/database/conflicts.py): the last-owner trigger locks the tenant row
`FOR NO KEY UPDATE`, as `lock_tenant` now does, instead of `FOR UPDATE`.

`FOR UPDATE` on the tenant row also blocks the KEY SHARE lock that every foreign-key check on
an insert naming the tenant takes (audit rows, notifications, devices). A transaction holding it
while it waited for the audit chain's advisory lock, against one holding that lock while its
audit insert waited for the key share, was the deadlock under mixed writes.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 03:30:00
"""
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION ensure_tenant_has_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Serialise owner changes per tenant; a deleted tenant needs no owner.
    PERFORM 1 FROM tenants WHERE id = OLD.tenant_id FOR {mode};
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM user_tenant_associations
                   WHERE tenant_id = OLD.tenant_id AND role = 'owner' AND status = 'active') THEN
        RAISE EXCEPTION 'tenant % must keep at least one active owner', OLD.tenant_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_keeps_an_owner';
    END IF;
    RETURN NULL;
END $$"""


def upgrade(app_role: str = "") -> None:
    op.execute(FUNCTION.format(mode="NO KEY UPDATE"))


def downgrade(app_role: str = "") -> None:
    op.execute(FUNCTION.format(mode="UPDATE"))
