"""Isolation enforced by PostgreSQL itself, as the serving role (no app code in the way)."""
from __future__ import annotations

import re
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from conftest import login


@pytest.fixture
def serving(db_urls):
    engine = sa.create_engine(db_urls["app"], poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def as_tenant(conn, tenant_id=None, user_id=None):
    conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true), set_config('app.user_id', :u, true)"),
                 {"t": str(tenant_id or ""), "u": str(user_id or "")})


TABLES = ["user_tenant_associations", "sites", "user_site_assignments", "devices", "audit_logs",
          "tenant_invitations"]


def test_no_tenant_set_means_no_rows(serving, world):
    with serving.begin() as conn:
        for table in TABLES:
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 0, table
    # After a commit on the same connection the setting reads '' (not NULL): still no rows, no cast error.
    with serving.connect() as conn:
        with conn.begin():
            as_tenant(conn, world["a"]["id"])
            assert conn.execute(sa.text("SELECT count(*) FROM devices")).scalar() == len(world["a"]["devices"])
        with conn.begin():
            assert conn.execute(sa.text("SELECT current_setting('app.tenant_id', true)")).scalar() == ""
            assert conn.execute(sa.text("SELECT count(*) FROM devices")).scalar() == 0


def test_tenant_sees_only_its_rows(serving, world):
    a, b = world["a"], world["b"]
    with serving.begin() as conn:
        as_tenant(conn, a["id"])
        assert conn.execute(sa.text("SELECT DISTINCT tenant_id FROM devices")).scalars().all() == [a["id"]]
        assert conn.execute(sa.text("SELECT count(*) FROM devices WHERE tenant_id = :b"),
                            {"b": b["id"]}).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM sites WHERE id = :s"), {"s": b["sites"][0]}).scalar() == 0


def test_tenant_cannot_update_or_delete_other_tenant_rows(serving, world):
    a, b = world["a"], world["b"]
    with serving.begin() as conn:
        as_tenant(conn, a["id"])
        updated = conn.execute(sa.text("UPDATE devices SET name = 'pwned' WHERE tenant_id = :b"), {"b": b["id"]})
        deleted = conn.execute(sa.text("DELETE FROM devices WHERE tenant_id = :b"), {"b": b["id"]})
        assert updated.rowcount == 0 and deleted.rowcount == 0
    with serving.begin() as conn:
        as_tenant(conn, b["id"])
        names = conn.execute(sa.text("SELECT name FROM devices")).scalars().all()
        assert len(names) == len(b["devices"]) and "pwned" not in names


def test_tenant_cannot_insert_into_other_tenant(serving, world):
    a, b = world["a"], world["b"]
    with pytest.raises(DBAPIError, match="row-level security"):
        with serving.begin() as conn:
            as_tenant(conn, a["id"])
            conn.execute(sa.text(
                "INSERT INTO devices (tenant_id, site_id, name, type, serial_number) "
                "VALUES (:b, :site, 'intruder', 'sensor', :sn)"),
                {"b": b["id"], "site": b["sites"][0], "sn": f"X-{uuid.uuid4()}"})


def test_tenant_cannot_move_its_row_into_other_tenant(serving, world):
    a, b = world["a"], world["b"]
    with pytest.raises(DBAPIError, match="row-level security"):
        with serving.begin() as conn:
            as_tenant(conn, a["id"])
            conn.execute(sa.text("UPDATE sites SET tenant_id = :b WHERE tenant_id = :a"), {"a": a["id"], "b": b["id"]})


def test_audit_log_is_append_only_for_the_serving_role(serving, world):
    with pytest.raises(DBAPIError, match="permission denied"):
        with serving.begin() as conn:
            as_tenant(conn, world["a"]["id"])
            conn.execute(sa.text("DELETE FROM audit_logs"))


def test_membership_self_read_shows_only_own_memberships(serving, world, factory):
    owner = world["users"]["owner"]
    with serving.begin() as conn:
        as_tenant(conn, None, owner.id)
        rows = conn.execute(sa.text("SELECT tenant_id, user_id FROM user_tenant_associations")).all()
    assert rows == [(world["a"]["id"], owner.id)]
    with pytest.raises(DBAPIError, match="row-level security|0 rows|violates"):
        with serving.begin() as conn:
            as_tenant(conn, None, owner.id)
            # The self-read policy is SELECT only: no way to grant oneself a role elsewhere.
            conn.execute(sa.text("INSERT INTO user_tenant_associations (tenant_id, user_id, role) "
                                 "VALUES (:b, :u, 'owner')"), {"b": world["b"]["id"], "u": owner.id})


def test_serving_role_cannot_bypass_rls(serving):
    with serving.connect() as conn:
        row = conn.execute(sa.text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")).one()
        assert row == (False, False)
        with pytest.raises(DBAPIError, match="must be owner|permission denied"):
            conn.execute(sa.text("ALTER TABLE devices DISABLE ROW LEVEL SECURITY"))


def test_a_thousand_alternating_requests_over_one_connection_do_not_leak(db_urls, world, factory):
    """Pool of one: every request reuses the same connection, alternating tenants."""
    from conftest import make_app
    app = make_app(db_urls, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0})
    a_owner, b_owner = world["users"]["owner"], world["b_owner"]
    clients = {}
    for key, user in (("a", a_owner), ("b", b_owner)):
        clients[key] = app.test_client()
        login(clients[key], user.email)
    pids = set()
    for i in range(1000):
        key = "a" if i % 2 == 0 else "b"
        other = "b" if key == "a" else "a"
        html = clients[key].get(f"/t/{world[key]['slug']}/devices/").get_data(as_text=True)
        found = set(re.findall(r"SN-(t-[0-9a-f]{8})-", html))
        assert found == {world[key]["slug"]}, f"request {i}: saw {found}"
        assert world[other]["slug"] not in html
        if i % 100 == 0:
            with app.app_context():
                from portal.extensions import db
                pids.add(db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar())
                db.session.rollback()
    assert len(pids) == 1, "the requests did not share one pooled connection"
