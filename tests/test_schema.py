"""Every table with tenant_id is isolated and distributable; migrations round-trip without drift."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask_migrate import check, downgrade, upgrade

import os

from conftest import drop_database, make_app
from portal.database.provision import provision, url_for_role
from portal.database.validate import (TENANT_TABLES_SQL, USER_TABLES_SQL, serving_role_problems,
                                     tenant_table_problems, user_table_problems)



def schema_problems(conn) -> dict[str, list[str]]:
    """The same check `flask db validate` runs (tests/test_operations.py runs the command itself)."""
    return tenant_table_problems(conn)


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


# A person's own rows, under forced RLS keyed on app.user_id (tests/test_user_rls.py checks what
# each shows; docs/isolation.md "Per-user tables" lists their policies).
USER_TABLES = {"user_sessions", "login_events", "mfa_backup_codes", "account_tokens", "authenticators",
               "webauthn_challenges", "security_events", "notifications", "notification_preferences",
               "user_avatars", "account_exports"}


def test_every_user_table_is_under_row_level_security(owner_conn):
    tables = {r[1] for r in owner_conn.execute(sa.text(USER_TABLES_SQL))}
    assert USER_TABLES <= tables
    assert user_table_problems(owner_conn) == {}


def test_schema_check_catches_an_unprotected_user_table(owner_conn):
    """A new table of a person's rows without forced RLS on app.user_id is reported, as is one
    whose policy reads every row."""
    trans = owner_conn.begin()
    try:
        owner_conn.execute(sa.text("CREATE TABLE careless_user (id uuid PRIMARY KEY, user_id uuid)"))
        owner_conn.execute(sa.text("CREATE TABLE leaky_user (id uuid PRIMARY KEY, user_id uuid)"))
        owner_conn.execute(sa.text("ALTER TABLE leaky_user ENABLE ROW LEVEL SECURITY"))
        owner_conn.execute(sa.text("ALTER TABLE leaky_user FORCE ROW LEVEL SECURITY"))
        owner_conn.execute(sa.text(
            "CREATE POLICY user_own ON leaky_user USING "
            "(user_id = (SELECT nullif(current_setting('app.user_id', true), ''))::uuid)"))
        owner_conn.execute(sa.text("CREATE POLICY everyone ON leaky_user FOR SELECT USING (true)"))
        problems = user_table_problems(owner_conn)
        assert problems["careless_user"] == ["row-level security is not enabled and forced",
                                             "no policy reads by app.user_id (with nullif)"]
        assert problems["leaky_user"] == ["a policy lets every row be read"]
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
        conn.rollback()
        assert serving_role_problems(conn) == []
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
