"""The keyring (issue 23): sealing with per-tenant data keys wrapped by master keys, its rotation, the
installation's secrets off SECRET_KEY, and crypto-shredding on purge (against a restored backup)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from portal import keys
from portal.extensions import db
from portal.keys import cipher


def seal_for(tenant_id, row_id, value=b"s3cret", table="integrations", column="credentials"):
    return keys.seal(value, tenant_id=tenant_id, table=table, column=column, row_id=row_id)


def test_sealed_value_reads_back_only_where_it_was_stored(app, factory):
    one, other = factory.tenant(sites=0, devices=0), factory.tenant(sites=0, devices=0)
    t1, t2 = one["id"], other["id"]
    with app.app_context():
        sealed = seal_for(t1, "row-1")
        db.session.commit()
        assert b"s3cret" not in sealed and cipher.version_of(sealed) == 1
        assert keys.unseal(sealed, tenant_id=t1, table="integrations", column="credentials", row_id="row-1") == b"s3cret"
        # Copied to another row, column, table or tenant: refused.
        for moved in ({"tenant_id": t1, "table": "integrations", "column": "credentials", "row_id": "row-2"},
                      {"tenant_id": t1, "table": "integrations", "column": "config", "row_id": "row-1"},
                      {"tenant_id": t1, "table": "webhooks", "column": "credentials", "row_id": "row-1"},
                      {"tenant_id": t2, "table": "integrations", "column": "credentials", "row_id": "row-1"},
                      {"tenant_id": None, "table": "integrations", "column": "credentials", "row_id": "row-1"}):
            with pytest.raises(keys.Unreadable):
                keys.unseal(sealed, **moved)
        # Altered anywhere (header, nonce, body, tag): refused.
        for position in (1, 4, 7, len(sealed) - 20, len(sealed) - 1):
            tampered = bytearray(sealed)
            tampered[position] ^= 1
            with pytest.raises(keys.Unreadable):
                keys.unseal(bytes(tampered), tenant_id=t1, table="integrations", column="credentials", row_id="row-1")
        with pytest.raises(keys.Unreadable):
            keys.unseal(b"gAAAAAB-a-fernet-token-from-before-the-keyring", tenant_id=t1, table="integrations",
                        column="credentials", row_id="row-1")
        assert issubclass(keys.Unreadable, ValueError)


def test_data_keys_are_stored_wrapped_under_rls(app, factory, db_urls):
    tenant = factory.tenant(sites=0, devices=0)
    with app.app_context():
        kid = keys.master_keys()[0][0]
        # The serving role outside the tenant's scope sees no key row.
        assert db.session.execute(text("SELECT count(*) FROM tenant_keys WHERE tenant_id = :t"),
                                  {"t": tenant["id"]}).scalar() == 0
        db.session.rollback()
    import sqlalchemy as sa
    engine = sa.create_engine(db_urls["owner"], poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT version, wrapped_key, master_key_id FROM tenant_keys WHERE tenant_id = :t"),
                           {"t": tenant["id"]}).one()
    engine.dispose()
    assert row.version == 1 and row.master_key_id == kid and len(row.wrapped_key) == 12 + 32 + 16


def test_master_keys_are_checked_at_start(db_urls):
    from conftest import make_app
    from portal.config import ConfigError
    with pytest.raises(ConfigError, match="not 32"):
        make_app(db_urls, PORTAL_MASTER_KEYS="c2hvcnQ=")
    with pytest.raises(ConfigError, match="same key twice"):
        make_app(db_urls, PORTAL_MASTER_KEYS="A" * 43 + "=," + "A" * 43 + "=")
