"""The audit trail is a hash chain per tenant: edits, deletions and insertions made behind the
portal's back (as the owner role, with SQL) are found by `flask audit verify`."""
from __future__ import annotations

import os
import threading
import uuid
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from conftest import drop_database, make_app
from portal import audit
from portal.audit import chain
from portal.database.context import tenant_scope
from portal.database.provision import provision, url_for_role
from portal.extensions import db


@pytest.fixture
def owner_engine(db_urls):
    engine = sa.create_engine(db_urls["owner"], poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def serving(db_urls):
    engine = sa.create_engine(db_urls["app"], poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def write(app, tenant_id, count: int, actor=None) -> None:
    with app.app_context():
        with tenant_scope(db.session, tenant_id, actor="test:setup"):
            for i in range(count):
                audit.record(tenant_id, actor, "device.update", "device", uuid.uuid4(),
                             before={"name": f"Old {i}", "ratio": 0.1 * i}, after={"name": f"Ünïcode {i} ✓"},
                             note="x" * i)
        db.session.commit()


def verify(app, slug=None):
    args = ["audit", "verify"] + (["--tenant", slug] if slug else [])
    return app.test_cli_runner().invoke(args=args)


def as_owner(engine, tenant_id, sql: str, **params):
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})
        return conn.execute(sa.text(sql), params)


@pytest.fixture
def chained(app, factory):
    t = factory.tenant(sites=0)
    write(app, t["id"], 5)
    return t


def test_an_untouched_chain_verifies(app, chained):
    result = verify(app, chained["slug"])
    assert result.exit_code == 0, result.output
    assert f"{chained['slug']}: 5 rows verified, head row 5" in result.output


def test_rows_are_numbered_and_linked(app, chained):
    with app.app_context(), tenant_scope(db.session, chained["id"], actor="test:setup"):
        rows = db.session.execute(sa.text(
            "SELECT seq, prev_hash, row_hash FROM audit_logs ORDER BY seq")).all()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert bytes(rows[0].prev_hash) == bytes(32)
    assert all(bytes(b.prev_hash) == bytes(a.row_hash) for a, b in zip(rows, rows[1:]))


def test_an_update_behind_the_portals_back_is_detected(app, chained, owner_engine):
    as_owner(owner_engine, chained["id"],
             "UPDATE audit_logs SET after = '{\"name\": \"innocent\"}' WHERE tenant_id = :t AND seq = 3",
             t=chained["id"])
    result = verify(app, chained["slug"])
    assert result.exit_code == 1
    assert "TAMPERED at row 3" in result.output and "content does not match" in result.output


def test_an_update_that_recomputes_the_rows_own_hash_breaks_the_next_link(app, chained, owner_engine):
    with app.app_context(), tenant_scope(db.session, chained["id"], actor="test:setup"):
        row = db.session.execute(sa.text(chain._ROWS.text.replace("ORDER BY seq", "AND seq = 2")),
                                 {"tenant": chained["id"]}).one()
    forged = row._asdict() | {"action": "device.view"}
    new_hash = chain.row_hash(bytes(row.prev_hash), SimpleNamespace(**forged))
    as_owner(owner_engine, chained["id"], "UPDATE audit_logs SET action = 'device.view', row_hash = :h "
             "WHERE tenant_id = :t AND seq = 2", h=new_hash, t=chained["id"])
    result = verify(app, chained["slug"])
    assert result.exit_code == 1
    assert "TAMPERED at row 3" in result.output and "link does not match" in result.output


def test_a_delete_behind_the_portals_back_is_detected(app, chained, owner_engine):
    as_owner(owner_engine, chained["id"], "DELETE FROM audit_logs WHERE tenant_id = :t AND seq = 2",
             t=chained["id"])
    result = verify(app, chained["slug"])
    assert result.exit_code == 1
    assert "TAMPERED at row 3" in result.output and "jumps from row 1 to row 3" in result.output


def test_an_insert_behind_the_portals_back_is_detected(app, chained, owner_engine):
    as_owner(owner_engine, chained["id"], """
        INSERT INTO audit_logs (tenant_id, id, seq, user_id, action, resource_type, resource_id, details,
                                prev_hash, row_hash)
        SELECT tenant_id, gen_random_uuid(), seq + 1, NULL, 'member.role_change', 'membership', 'x', '{}',
               row_hash, sha256('forged'::bytea)
          FROM audit_logs WHERE tenant_id = :t ORDER BY seq DESC LIMIT 1""", t=chained["id"])
    result = verify(app, chained["slug"])
    assert result.exit_code == 1
    assert "TAMPERED at row 6" in result.output and "content does not match" in result.output


def test_verify_checks_every_tenant_and_names_the_broken_one(app, chained, factory, owner_engine):
    other = factory.tenant(sites=0)
    write(app, other["id"], 2)
    as_owner(owner_engine, chained["id"], "UPDATE audit_logs SET ip_address = '198.51.100.7' "
             "WHERE tenant_id = :t AND seq = 1", t=chained["id"])
    result = verify(app)
    assert result.exit_code == 1
    assert f"{other['slug']}: 2 rows verified" in result.output
    assert f"{chained['slug']}: TAMPERED at row 1" in result.output


def test_verify_unknown_tenant_is_a_clear_error(app):
    result = verify(app, "no-such-tenant")
    assert result.exit_code != 0 and "No organization with the slug" in result.output


def test_the_serving_role_cannot_update_or_delete_audit_rows(chained, serving):
    for statement in ("UPDATE audit_logs SET action = 'x'", "DELETE FROM audit_logs WHERE seq = 1"):
        with pytest.raises(sa.exc.DBAPIError, match="permission denied"):
            with serving.begin() as conn:
                conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(chained["id"])})
                conn.execute(sa.text(statement))


def test_the_serving_role_cannot_append_to_another_tenants_chain(chained, factory, serving):
    other = factory.tenant(sites=0)
    with pytest.raises(sa.exc.DBAPIError, match="row-level security"):
        with serving.begin() as conn:
            conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(other["id"])})
            conn.execute(sa.text("SELECT audit_append(:t, '[{\"action\": \"x\", \"resource_type\": \"y\"}]')"),
                         {"t": str(chained["id"])})


def test_concurrent_writers_in_one_tenant_never_fork_the_chain(app, factory):
    t = factory.tenant(sites=0)
    errors: list[BaseException] = []

    def writer():
        try:
            for _ in range(15):
                write(app, t["id"], 2)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = verify(app, t["slug"])
    assert result.exit_code == 0, result.output
    assert "120 rows verified, head row 120" in result.output


def test_bulk_writes_chain_like_single_ones(app, factory):
    t = factory.tenant(sites=0)
    with app.app_context():
        with tenant_scope(db.session, t["id"], actor="test:setup"):
            audit.record_many(t["id"], None, "device.import", "device",
                              [(uuid.uuid4(), None, {"name": f"D{i}"}) for i in range(300)], source="test.csv")
            audit.record(t["id"], None, "device.create", "device", uuid.uuid4(), after={"name": "one more"})
        db.session.commit()
    result = verify(app, t["slug"])
    assert result.exit_code == 0 and "301 rows verified" in result.output, result.output


@pytest.mark.slow
def test_the_migration_chains_rows_written_before_it(db_urls):
    """A database at 0005 with audit rows: 0008 chains them, and they verify; downgrade works."""
    scratch = f"portal_chain_{os.getpid()}"
    provision(db_urls["admin"], scratch, "portal_test_owner", "portal_test_app", fresh=True)
    urls = {"app": url_for_role(db_urls["admin"], "portal_test_app", scratch),
            "owner": url_for_role(db_urls["admin"], "portal_test_owner", scratch)}
    app = make_app({**db_urls, **urls})
    try:
        with app.app_context():
            upgrade(revision="0005")
            engine = sa.create_engine(urls["owner"], poolclass=sa.pool.NullPool)
            with engine.begin() as conn:
                tenant = conn.execute(sa.text(
                    "INSERT INTO tenants (name, slug) VALUES ('Old', 'old-tenant') RETURNING id")).scalar()
                conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
                for i in range(4):
                    conn.execute(sa.text(
                        "INSERT INTO audit_logs (tenant_id, action, resource_type, resource_id, after, created_at,"
                        " ip_address) VALUES (:t, 'site.create', 'site', :r, CAST(:a AS jsonb), "
                        "now() - make_interval(days => :d), '10.0.0.1')"),
                        {"t": tenant, "r": str(i), "a": f'{{"n": {i}}}', "d": 10 - i})
            engine.dispose()
            upgrade()
            result = verify(app, "old-tenant")
            assert result.exit_code == 0 and "4 rows verified, head row 4" in result.output, result.output
            write(app, tenant, 1)  # new rows continue the migrated chain
            assert "5 rows verified" in verify(app, "old-tenant").output
            from flask_migrate import downgrade
            downgrade(revision="0005")
            upgrade()
            assert "5 rows verified" in verify(app, "old-tenant").output
    finally:
        with app.app_context():
            db.engine.dispose()
        drop_database(db_urls["admin"], scratch)
