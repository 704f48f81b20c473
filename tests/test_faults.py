"""Faults the portal survives: PostgreSQL stopping and starting under it, Redis gone from under the
rate limiter. Real servers, really stopped."""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from conftest import APP_ROLE, OWNER, SEED_PASSWORD, csrf_from, csrf_token, make_app
from mailbox import free_port
from portal.database import embedded, liveness
from portal.database.provision import libpq_url, provision, url_for_role
from portal.extensions import db
from portal.jobs.worker import WorkerThread
from portal.seeding import load_sample

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def own_server():
    """A PostgreSQL of this test's own (the suite's server must keep running), stopped and started at will."""
    from pgserver._commands import pg_ctl
    pgdata = ROOT / "instance" / f"pgfault-{os.getpid()}"
    server = embedded.start(pgdata)

    class Control:
        url = embedded.admin_url(server)

        def stop(self):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)

        def start(self):
            server.ensure_postgres_running()

    yield Control()
    try:
        server.ensure_postgres_running()  # so its normal shutdown finds it
    finally:
        embedded._servers.pop(pgdata.resolve(), None)
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture
def restartable_app(own_server, db_urls):
    provision(own_server.url, "portal", OWNER, APP_ROLE)
    urls = {**db_urls, "app": url_for_role(own_server.url, APP_ROLE, "portal"),
            "owner": url_for_role(own_server.url, OWNER, "portal")}
    app = make_app(urls)
    with app.app_context():
        upgrade()
        load_sample(SEED_PASSWORD)
        db.session.commit()
    yield app
    with app.app_context():
        db.engine.dispose()


def wait_for(condition, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return False


def _worker_seen_since_restart(app) -> bool:
    with app.app_context():
        return db.session.execute(sa.text(
            "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > pg_postmaster_start_time()")).scalar() > 0


def sign_in(client, email):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": email, "password": SEED_PASSWORD, "csrf_token": token})
    assert response.status_code == 303
    return token


@pytest.mark.slow
@pytest.mark.extended
def test_postgres_restart_gives_503_then_recovers_without_restarting_the_app(own_server, restartable_app, caplog):
    app = restartable_app
    alice = app.test_client()
    sign_in(alice, "alice@acme.com")
    assert alice.get("/t/acme-corp/").status_code == 200
    token = csrf_token(alice)
    worker = WorkerThread(app)
    worker.start()
    assert wait_for(lambda: alice.get("/readyz").status_code == 200, 15)

    own_server.stop()
    try:
        page = alice.get("/t/acme-corp/")
        assert page.status_code == 503 and page.headers["Retry-After"] == "5"
        html = page.get_data(as_text=True)
        assert "<html" in html and "Service unavailable" in html and "Traceback" not in html
        fragment = alice.get("/t/acme-corp/devices/", headers={"HX-Request": "true"})
        assert fragment.status_code == 503
        assert "<html" not in fragment.get_data(as_text=True) and "Service unavailable" in fragment.get_data(as_text=True)
        # A write while it is down: refused as a whole.
        write = alice.post("/t/acme-corp/sites/new", data={"name": "Outage Site", "timezone": "UTC", "csrf_token": token})
        assert write.status_code == 503
        assert alice.get("/healthz").status_code == 503
        assert alice.get("/no-such-page").status_code == 503  # even a 404 page needs the signed-in user
    finally:
        own_server.start()

    assert alice.get("/t/acme-corp/").status_code == 200  # the same app, its pool reconnected
    assert alice.get("/healthz").status_code == 200
    try:  # and the worker came back on its own
        assert wait_for(lambda: alice.get("/readyz").json["worker"] == "ok" and
                        _worker_seen_since_restart(app), 40)
    finally:
        worker.stop()
    assert "Outage Site" not in alice.get("/t/acme-corp/sites/").get_data(as_text=True)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and "Unhandled" in r.getMessage()]


def test_redis_down_sign_in_keeps_working_with_per_process_limits(db_urls, app, caplog):
    port = free_port()  # nothing listens there: Redis is down
    redis_app = make_app(db_urls, RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{port}", RATELIMIT_LOGIN="3 per minute")
    client = redis_app.test_client()
    with caplog.at_level(logging.WARNING):
        token = sign_in(client, "alice@acme.com")
    assert client.get("/t/acme-corp/").status_code == 200
    assert any("falling back to in-memory storage" in r.getMessage() for r in caplog.records)
    # The limit still holds, counted in this process.
    stranger = redis_app.test_client()
    token = csrf_from(stranger.get("/login").get_data(as_text=True))
    codes = [stranger.post("/login", data={"email": "alice@acme.com", "password": "wrong password here",
                                           "csrf_token": token}).status_code for _ in range(4)]
    assert codes[-1] == 429 and 500 not in codes


def _terminate_app_connections(app, db_urls) -> int:
    """What a restart or an administrator does to the app's pooled connections (this database only)."""
    with app.app_context():
        database = db.engine.url.database
    with psycopg.connect(libpq_url(db_urls["admin"]), autocommit=True) as conn:
        return len(conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                                "AND usename = %s AND pid <> pg_backend_pid()", (database, APP_ROLE)).fetchall())


def test_dropped_pooled_connections_cost_no_request_and_no_ping(app, db_urls, monkeypatch):
    """No pre-ping round trip per checkout; a pooled connection the server has dropped is found
    at checkout from its socket, or, when that misses it, at the request's first statement,
    which is retried once on a fresh connection. Either way the user sees the page."""
    with app.app_context():
        assert db.engine.pool._pre_ping is False
    alice = app.test_client()
    sign_in(alice, "alice@acme.com")
    url, hx = "/t/acme-corp/devices/", {"HX-Request": "true"}
    assert alice.get(url, headers=hx).status_code == 200
    assert _terminate_app_connections(app, db_urls) >= 1
    time.sleep(0.2)  # the server's goodbye reaches the sockets
    assert alice.get(url, headers=hx).status_code == 200  # found at checkout
    assert alice.get(url, headers=hx).status_code == 200
    monkeypatch.setattr(liveness, "_dropped", lambda dbapi_connection: False)  # a silent death
    assert _terminate_app_connections(app, db_urls) >= 1
    time.sleep(0.2)
    response = alice.get(url, headers=hx)
    assert response.status_code == 200 and 'id="device-list"' in response.get_data(as_text=True)
    assert alice.get("/t/acme-corp/").status_code == 200
    monkeypatch.undo()
    with app.app_context():  # the suite's app goes on: no killed connection left in its pool for
        db.engine.dispose()  # code outside a request (test factories), which has no retry


def test_request_context_row_is_the_same_on_the_driver_path_as_on_sqlalchemys(app, factory):
    """The request's first statement skips SQLAlchemy's result layer (database.driver) unless
    something listens to the engine's statements: both give the same row, with the same types,
    and a listener sees the statement."""
    from portal.database.driver import first_row
    user = factory.user()
    tenant = factory.tenant(members={"admin": user})
    sql = "SELECT * FROM portal_enter_tenant(%(user_id)s, %(slug)s)"
    values = {"user_id": user.id, "slug": tenant["slug"]}
    seen = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)
    as_user = sa.text("SELECT set_config('app.user_id', :u, true)")  # the membership_self_read policy
    with app.app_context():
        db.session.execute(as_user, {"u": str(user.id)})
        fast = first_row(db.session, sql, values)
        db.session.rollback()
        db.session.execute(as_user, {"u": str(user.id)})
        sa.event.listen(db.engine, "before_cursor_execute", record)
        try:
            slow = first_row(db.session, sql, values)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", record)
        db.session.rollback()
    assert fast is not None and fast.t_slug == tenant["slug"] and fast.m_role == "admin"
    assert fast._fields == tuple(slow._fields) and tuple(fast) == tuple(slow)
    assert [type(value) for value in fast] == [type(value) for value in slow]
    assert seen == [sql]
