"""Every table with tenant_id is isolated and distributable; migrations round-trip without drift."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask_migrate import check, downgrade, upgrade

import os

from conftest import drop_database, make_app
from portal.database.provision import provision, url_for_role

TENANT_TABLES_SQL = """
SELECT c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname
"""


def schema_problems(conn) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    tables = conn.execute(sa.text(TENANT_TABLES_SQL)).all()
    for oid, name, rls, forced in tables:
        found = []
        notnull = conn.execute(sa.text(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = :o AND attname = 'tenant_id'"), {"o": oid}).scalar()
        if not notnull:
            found.append("tenant_id is nullable")
        if not (rls and forced):
            found.append("row-level security is not enabled and forced")
        policies = conn.execute(sa.text(
            "SELECT polname, pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid), polcmd "
            "FROM pg_policy WHERE polrelid = :o"), {"o": oid}).all()
        tenant_policy = [p for p in policies if p[1] and "app.tenant_id" in p[1] and p[3] == "*"
                         and p[2] and "app.tenant_id" in p[2] and "nullif" in p[1]]
        if not tenant_policy:
            found.append("no ALL-commands policy on app.tenant_id (with nullif) for USING and WITH CHECK")
        indexes = conn.execute(sa.text(
            "SELECT i.indkey::int2[] AS cols, i.indisunique, i.indisprimary, ic.relname FROM pg_index i "
            "JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = :o"), {"o": oid}).all()
        tenant_attnum = conn.execute(sa.text(
            "SELECT attnum FROM pg_attribute WHERE attrelid = :o AND attname = 'tenant_id'"), {"o": oid}).scalar()
        if not any(cols and cols[0] == tenant_attnum for cols, *_ in indexes):
            found.append("no index leads with tenant_id")
        for cols, unique, primary, iname in indexes:
            if (unique or primary) and tenant_attnum not in cols:
                found.append(f"{'primary key' if primary else 'unique index'} {iname} lacks tenant_id")
        if not any(primary for _, _, primary, _ in indexes):
            found.append("no primary key")
        fks = conn.execute(sa.text(
            "SELECT conname, confrelid::regclass::text, conkey::int2[] FROM pg_constraint "
            "WHERE conrelid = :o AND contype = 'f'"), {"o": oid}).all()
        tenant_table_names = {t[1] for t in tables}
        for conname, target, cols in fks:
            if target in tenant_table_names and tenant_attnum not in cols:
                found.append(f"foreign key {conname} to tenant table {target} lacks tenant_id")
        if found:
            problems[name] = found
    return problems


@pytest.fixture
def owner_conn(app, db_urls):
    engine = sa.create_engine(db_urls["owner"], poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def test_every_tenant_table_is_isolated_and_keyed_by_tenant(owner_conn):
    tables = [r[1] for r in owner_conn.execute(sa.text(TENANT_TABLES_SQL))]
    assert {"user_tenant_associations", "sites", "user_site_assignments", "devices", "audit_logs",
            "tenant_invitations"} <= set(tables)
    assert schema_problems(owner_conn) == {}


def test_schema_check_catches_an_unprotected_table(owner_conn):
    """The isolation test must be able to fail: a careless new table is reported."""
    trans = owner_conn.begin()
    try:
        owner_conn.execute(sa.text("CREATE TABLE careless (id uuid PRIMARY KEY, tenant_id uuid)"))
        problems = schema_problems(owner_conn)["careless"]
        assert "row-level security is not enabled and forced" in problems
        assert "tenant_id is nullable" in problems
        assert "no index leads with tenant_id" in problems
        assert any("primary key" in p for p in problems)
    finally:
        trans.rollback()


def test_serving_role_privileges(owner_conn, db_urls):
    engine = sa.create_engine(db_urls["app"], poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        owns = conn.execute(sa.text(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND pg_has_role(current_user, c.relowner, 'USAGE')")).scalar()
        assert owns == 0
        with pytest.raises(sa.exc.DBAPIError, match="permission denied"):
            conn.execute(sa.text("CREATE TABLE sneaky (id int)"))
    engine.dispose()


def test_updated_at_trigger(owner_conn, factory, app):
    t = factory.tenant(sites=0)
    owner_conn.execute(sa.text("UPDATE tenants SET name = 'Renamed', updated_at = '2000-01-01' WHERE id = :i"),
                       {"i": t["id"]})
    created, updated = owner_conn.execute(sa.text("SELECT created_at, updated_at FROM tenants WHERE id = :i"),
                                          {"i": t["id"]}).one()
    owner_conn.rollback()
    assert updated >= created and updated.year > 2000


@pytest.mark.slow
def test_migrations_round_trip_and_match_the_models(db_urls):
    """upgrade -> downgrade to base -> upgrade on a scratch database, then `flask db check`."""
    scratch = f"portal_migrations_{os.getpid()}"
    provision(db_urls["admin"], scratch, "portal_test_owner", "portal_test_app", fresh=True)
    urls = {"app": url_for_role(db_urls["admin"], "portal_test_app", scratch),
            "owner": url_for_role(db_urls["admin"], "portal_test_owner", scratch)}
    app = make_app({**db_urls, **urls}, CHECK_RLS=False)
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        engine = sa.create_engine(urls["owner"], poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            leftovers = conn.execute(sa.text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v') AND c.relname <> 'alembic_version'"
            )).scalar()
            types = conn.execute(sa.text(
                "SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = 'public' AND t.typtype = 'e'")).scalar()
        engine.dispose()
        assert (leftovers, types) == (0, 0)
        upgrade()
        check()  # `flask db check`: exits non-zero when models and migrations drift apart
    drop_database(db_urls["admin"], scratch)
