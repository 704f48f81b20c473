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


def set_status(conn, values):
    """A tenant's status, changed as the console would (a system actor: migration 0027's guard);
    the request-context function called next clears the actor."""
    conn.execute(sa.text("SELECT set_config('app.actor', 'test:console', true)"))
    conn.execute(sa.text("UPDATE tenants SET status = :s WHERE id = :t"), values)


def as_tenant(conn, tenant_id=None, user_id=None):
    """The tenant (and user) of the transaction, as a system actor: the permission and site policies
    (migration 0027, tests/test_permission_policies.py) let it do anything inside the tenant, so
    what these tests see is the tenant wall alone, for the most privileged principal there is."""
    conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true), set_config('app.user_id', :u, true), "
                         "set_config('app.actor', 'test:rls', true)"),
                 {"t": str(tenant_id or ""), "u": str(user_id or "")})


TABLES = ["user_tenant_associations", "sites", "user_site_assignments", "devices", "audit_logs",
          "tenant_invitations", "tenant_roles", "tenant_role_permissions", "tenant_exports", "tenant_slug_redirects",
          "audit_checkpoints", "tasks", "task_comments", "tenant_logos", "api_clients", "api_tokens",
          "api_idempotency_keys", "analytics_events", "analytics_daily", "scim_tokens", "scim_users", "scim_groups",
          "scim_group_members", "user_roles"]


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
    """With only the user set: their own memberships, and (seed 003, `member_read`) the members
    of the organizations where they may see members; never another organization's."""
    owner = world["users"]["owner"]
    with serving.begin() as conn:
        as_tenant(conn, None, owner.id)
        rows = conn.execute(sa.text("SELECT tenant_id, user_id FROM user_tenant_associations")).all()
    assert sorted(rows) == sorted((world["a"]["id"], u.id) for u in world["users"].values())
    outsider = world["outsider"]
    with serving.begin() as conn:
        as_tenant(conn, None, world["b_owner"].id)
        rows = conn.execute(sa.text("SELECT tenant_id, user_id FROM user_tenant_associations")).all()
        assert rows == [(world["b"]["id"], world["b_owner"].id)]
        as_tenant(conn, None, outsider.id)
        assert conn.execute(sa.text("SELECT count(*) FROM user_tenant_associations")).scalar() == 0
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


@pytest.mark.extended
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


# --- The request-context functions (migration 0005), as the serving role ---------------------

def _settings(conn) -> tuple[str, str]:
    return tuple(conn.execute(sa.text("SELECT coalesce(current_setting('app.user_id', true), ''), "
                                      "coalesce(current_setting('app.tenant_id', true), '')")).one())


def _context(conn, token_hash: bytes, user_id, slug: str | None, idle_seconds: int = 1800):
    return conn.execute(sa.text("SELECT * FROM portal_request_context(:h, :u, :i, :s)"),
                        {"h": token_hash, "u": user_id, "i": idle_seconds, "s": slug}).all()


@pytest.fixture
def signed_in(serving, world):
    """A session record of tenant A's owner: (token hash, user id)."""
    import hashlib
    token_hash = hashlib.sha256(uuid.uuid4().bytes).digest()
    owner = world["users"]["owner"]
    with serving.begin() as conn:
        as_tenant(conn, None, owner.id)  # a session is its user's own row (RLS user_own)
        conn.execute(sa.text("INSERT INTO user_sessions (user_id, token_hash, expires_at) "
                             "VALUES (:u, :h, now() + interval '1 hour')"), {"u": owner.id, "h": token_hash})
    return token_hash, owner.id


def test_request_context_sets_nothing_without_a_valid_session(serving, world, signed_in):
    token_hash, user_id = signed_in
    a = world["a"]
    cases = {
        "unknown token": ("", b"\x00" * 32, user_id),
        "another user's id": ("", token_hash, world["users"]["admin"].id),
        "revoked": ("UPDATE user_sessions SET revoked_at = now() WHERE token_hash = :h", token_hash, user_id),
        "expired": ("UPDATE user_sessions SET expires_at = now() - interval '1 second' WHERE token_hash = :h",
                    token_hash, user_id),
        "idle too long": ("UPDATE user_sessions SET last_seen_at = now() - interval '31 minutes' "
                          "WHERE token_hash = :h", token_hash, user_id),
        "disabled user": ("UPDATE users SET is_active = false WHERE id = (SELECT user_id FROM user_sessions "
                          "WHERE token_hash = :h)", token_hash, user_id),
    }
    for name, (change, presented, claimed) in cases.items():
        with serving.connect() as conn:
            with conn.begin() as tx:
                if change:
                    as_tenant(conn, None, user_id)
                    assert conn.execute(sa.text(change), {"h": token_hash}).rowcount == 1, name
                    as_tenant(conn, None, None)
                assert _context(conn, presented, claimed, a["slug"]) == [], name
                assert _settings(conn) == ("", ""), name
                # Nothing set, so RLS shows none of the user's memberships and no tenant rows.
                assert conn.execute(sa.text("SELECT count(*) FROM user_tenant_associations")).scalar() == 0, name
                assert conn.execute(sa.text("SELECT count(*) FROM devices")).scalar() == 0, name
                tx.rollback()


NIL = "00000000-0000-0000-0000-000000000000"


def test_request_context_enters_only_a_tenant_the_user_belongs_to(serving, world, signed_in):
    token_hash, user_id = signed_in
    a, b = world["a"], world["b"]
    with serving.begin() as conn:
        (row,) = _context(conn, token_hash, user_id, a["slug"])
        assert (row.t_id, row.t_slug, row.m_role) == (a["id"], a["slug"], "owner")
        assert _settings(conn) == (str(user_id), str(a["id"]))
        assert conn.execute(sa.text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
        assert conn.execute(sa.text("SELECT count(*) FROM devices")).scalar() == len(a["devices"])
    for slug in (b["slug"], "no-such-tenant", None):
        with serving.begin() as conn:
            (row,) = _context(conn, token_hash, user_id, slug)
            # Signed in, but nothing about a tenant the user may not enter comes back or is set;
            # a tenant URL gets the nil tenant, so not even the user's own organizations' rows
            # (which pages outside tenants read, seed 003's member_read).
            assert row.s_id is not None and row.t_id is None and row.t_name is None and row.m_id is None, slug
            assert _settings(conn) == (str(user_id), NIL if slug else ""), slug
            assert conn.execute(sa.text("SELECT count(*) FROM devices")).scalar() == 0, slug
            # Outside any tenant URL (None), seed 003's tables answer for the user's own organization.
            seen = set(conn.execute(sa.text("SELECT tenant_id FROM user_tenant_associations")).scalars())
            assert seen == {a["id"]}, slug  # on a tenant URL, the user's own membership only
    with serving.begin() as conn:
        # A failed entry also ends an earlier tenant of the transaction.
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :b, true)"), {"b": str(b["id"])})
        assert conn.execute(sa.text("SELECT * FROM portal_enter_tenant(:u, :s)"),
                            {"u": user_id, "s": b["slug"]}).all() == []
        assert _settings(conn)[1] == NIL and conn.execute(sa.text("SELECT count(*) FROM devices")).scalar() == 0
    for status in ("suspended",):
        with serving.connect() as conn:
            with conn.begin() as tx:
                set_status(conn, {"s": status, "t": a["id"]})
                (row,) = _context(conn, token_hash, user_id, a["slug"])
                # Its member is told the tenant's status (to be shown why), and nothing else: no
                # permissions, no tenant context, so not one of its rows.
                assert (row.t_id, row.t_status, row.r_permissions) == (a["id"], status, None), status
                assert _settings(conn) == (str(user_id), NIL), status
                assert conn.execute(sa.text("SELECT count(*) FROM devices")).scalar() == 0, status
                tx.rollback()
    for status in ("archived", "pending_deletion"):
        with serving.connect() as conn:
            with conn.begin() as tx:  # read-only for members (the application refuses changes)
                set_status(conn, {"s": status, "t": a["id"]})
                (row,) = _context(conn, token_hash, user_id, a["slug"])
                assert row.t_id == a["id"] and _settings(conn) == (str(user_id), str(a["id"])), status
                tx.rollback()
    for status in ("suspended", "archived"):
        with serving.connect() as conn:  # and a stranger to the tenant still gets nothing at all
            with conn.begin() as tx:
                set_status(conn, {"s": status, "t": b["id"]})
                (row,) = _context(conn, token_hash, user_id, b["slug"])
                assert row.t_id is None and row.t_status is None and _settings(conn) == (str(user_id), NIL), status
                tx.rollback()


def test_request_context_functions_are_not_executable_by_public(serving, db_urls):
    with serving.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') FROM pg_proc p "
            "WHERE p.proname IN ('portal_request_context', 'portal_enter_tenant') ORDER BY 1")).all()
    assert rows == [("portal_enter_tenant", False), ("portal_request_context", False)]


def test_a_change_made_in_a_tenant_scope_is_written_under_its_context(app, factory):
    """A job changes a row inside `tenant_scope` and commits after leaving it: the change is
    flushed on leaving, under the tenant's RLS context (flushed at commit, the policy would hide
    the row and the UPDATE would match none: the domain re-check's StaleDataError)."""
    from portal.database.context import tenant_scope
    from portal.extensions import db
    from portal.sites.models import Site
    t = factory.tenant(sites=1)
    with app.app_context():
        with tenant_scope(db.session, t["id"], actor="test:setup"):
            db.session.get(Site, (t["id"], t["sites"][0])).name = "Renamed in its scope"
        db.session.commit()
        db.session.expire_all()
        with tenant_scope(db.session, t["id"], actor="test:setup"):
            assert db.session.get(Site, (t["id"], t["sites"][0])).name == "Renamed in its scope"
        db.session.rollback()
