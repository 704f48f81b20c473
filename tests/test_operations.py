"""Operator commands: `flask db validate|status|reset`, `flask backup create|restore`."""
from __future__ import annotations

import os
import re

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from conftest import APP_ROLE, OWNER, SEED_PASSWORD, drop_database, make_app
from portal.database.provision import provision, url_for_role
from portal.extensions import db
from portal.seeding import load_sample


@pytest.fixture
def owner_engine(db_urls):
    engine = sa.create_engine(db_urls["owner"], poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def test_validate_passes_on_a_sound_database(app):
    result = app.test_cli_runner().invoke(args=["db", "validate"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK")


def test_validate_lists_each_violation_and_exits_non_zero(app, owner_engine):
    with owner_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE careless (id uuid PRIMARY KEY, tenant_id uuid)"))
        conn.execute(sa.text(f"GRANT SELECT, TRUNCATE ON careless, sites TO {APP_ROLE}"))
    try:
        result = app.test_cli_runner().invoke(args=["db", "validate"])
    finally:
        with owner_engine.begin() as conn:
            conn.execute(sa.text(f"REVOKE TRUNCATE ON sites FROM {APP_ROLE}"))
            conn.execute(sa.text("DROP TABLE careless"))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "FAIL careless: row-level security is not enabled and forced" in lines
    assert "FAIL careless: tenant_id is nullable" in lines
    assert "FAIL careless: no index leads with tenant_id" in lines
    assert f"FAIL serving role '{APP_ROLE}' has TRUNCATE on sites" in lines
    assert any(line.startswith("FAIL models and migrations differ") and "careless" in line for line in lines)


def test_status_names_the_revision_and_pending_migrations(app):
    result = app.test_cli_runner().invoke(args=["db", "status"])
    assert result.exit_code == 0, result.output
    current = re.search(r"^current: (\S+)$", result.output, re.M).group(1)
    head = re.search(r"^head: +(\S+)$", result.output, re.M).group(1)
    assert current == head and "pending: none" in result.output and "validate: OK" in result.output


def test_reset_is_refused_in_production(db_urls, app):
    prod = make_app(db_urls, PORTAL_ENV="production", BASE_URL="https://portal.example.com")
    result = prod.test_cli_runner().invoke(args=["db", "reset", "--yes"])
    assert result.exit_code != 0 and "Refusing to reset a production database" in result.output


@pytest.fixture
def scratch(db_urls):
    name = f"portal_ops_{os.getpid()}"
    provision(db_urls["admin"], name, OWNER, APP_ROLE, fresh=True)
    urls = {**db_urls, "app": url_for_role(db_urls["admin"], APP_ROLE, name),
            "owner": url_for_role(db_urls["admin"], OWNER, name)}
    app = make_app(urls, CHECK_RLS=False)
    with app.app_context():
        upgrade()
    yield app, urls
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    drop_database(db_urls["admin"], name)


def snapshot(owner_url: str) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row, per table (the owner bypasses RLS)."""
    engine = sa.create_engine(owner_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        tables = conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                      "ORDER BY tablename")).scalars().all()
        found = {t: conn.execute(sa.text(
            f'SELECT count(*), md5(coalesce(string_agg(r::text, \'|\' ORDER BY r::text), \'\')) FROM "{t}" r')).one()
            for t in tables}
    engine.dispose()
    return {t: tuple(v) for t, v in found.items()}


@pytest.mark.slow
def test_backup_round_trip_and_reset(scratch, tmp_path):
    app, urls = scratch
    with app.app_context():
        load_sample(SEED_PASSWORD)
        db.session.commit()
    before = snapshot(urls["owner"])
    assert before["devices"][0] > 0 and before["tenants"][0] > 0 and before["alembic_version"][0] == 1
    runner = app.test_cli_runner()
    file = tmp_path / "portal.dump"
    result = runner.invoke(args=["backup", "create", str(file)])
    assert result.exit_code == 0, result.output
    assert file.stat().st_size > 0

    refused = runner.invoke(args=["backup", "restore", str(file)])
    assert refused.exit_code != 0 and "not empty" in refused.output and "--force" in refused.output

    with app.app_context():  # wipe
        db.session.remove()
        db.engine.dispose()
        downgrade(revision="base")
    assert snapshot(urls["owner"]).keys() == {"alembic_version"}
    result = runner.invoke(args=["backup", "restore", str(file)])
    assert result.exit_code == 0, result.output
    assert snapshot(urls["owner"]) == before
    # The restored database serves: the grants came back too.
    assert app.test_cli_runner().invoke(args=["db", "validate"]).exit_code == 0

    result = runner.invoke(args=["backup", "restore", "--force", str(file)])
    assert result.exit_code == 0, result.output
    assert snapshot(urls["owner"]) == before

    engine = sa.create_engine(urls["owner"], poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE tenants SET name = 'Changed'"))
    engine.dispose()
    result = runner.invoke(args=["db", "reset", "--yes"])
    assert result.exit_code == 0, result.output
    after_reset = snapshot(urls["owner"])
    assert after_reset["tenants"][0] == before["tenants"][0]
    engine = sa.create_engine(urls["owner"], poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tenants WHERE name = 'Changed'")).scalar() == 0
    engine.dispose()
