"""The production shape's pooler: PgBouncer in transaction pooling mode with 2 server connections in front
of PostgreSQL. Tenant context is per transaction (set_config(..., true)), so sharing server connections
between clients never leaks a tenant; the portal turns server-side prepared statements off for it."""
from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import test_rls
from conftest import login, make_app

ROOT = Path(__file__).resolve().parent.parent
PGBOUNCER = shutil.which("pgbouncer")
pytestmark = pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer is not installed (apt-get install pgbouncer; "
                                                          ".ci/run installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bouncer(db_urls):
    """PgBouncer 1.18 on loopback: pool_mode=transaction, 2 server connections for the serving role."""
    server = make_url(db_urls["app"])
    host = server.query.get("host") or server.host
    # Readable by the user pgbouncer runs as (a pytest tmp folder is private to root).
    folder = ROOT / "instance" / f"pgbouncer-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    port = free_port()
    (folder / "users.txt").write_text(f'"{server.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""
[databases]
portal = host={host} port={server.port or 5432} dbname={server.database} user={server.username}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = 2
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 100
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
""")
    command = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root: run it as the user who may reach the server's socket
        if host and host.startswith("/"):
            user = pwd.getpwuid(os.stat(host).st_uid).pw_name
        else:
            user = "postgres" if _user_exists("postgres") else "nobody"
        command[1:1] = ["-u", user]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"pgbouncer did not start: {proc.stdout.read()}")
            time.sleep(0.1)
    url = server.set(host="127.0.0.1", port=port, database="portal", query={}).render_as_string(hide_password=False)
    yield url
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(folder, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture
def serving_through_bouncer(bouncer):
    engine = sa.create_engine(bouncer, poolclass=sa.pool.NullPool, connect_args={"prepare_threshold": None})
    yield engine
    engine.dispose()


@pytest.mark.parametrize("check", [
    test_rls.test_no_tenant_set_means_no_rows,
    test_rls.test_tenant_sees_only_its_rows,
    test_rls.test_tenant_cannot_update_or_delete_other_tenant_rows,
    test_rls.test_tenant_cannot_insert_into_other_tenant,
    test_rls.test_tenant_cannot_move_its_row_into_other_tenant,
    test_rls.test_audit_log_is_append_only_for_the_serving_role,
], ids=lambda f: f.__name__.removeprefix("test_"))
def test_isolation_through_pgbouncer(check, serving_through_bouncer, world):
    check(serving_through_bouncer, world)


@pytest.mark.extended
def test_a_thousand_alternating_requests_through_pgbouncer_do_not_leak(db_urls, bouncer, world):
    """Two clients, two tenants, one pooled client connection each side, two server connections behind."""
    app = make_app({**db_urls, "app": bouncer}, DB_PREPARED_STATEMENTS=False,
                   SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 2, "max_overflow": 0, "pool_pre_ping": True})
    clients = {}
    for key, user in (("a", world["users"]["owner"]), ("b", world["b_owner"])):
        clients[key] = app.test_client()
        login(clients[key], user.email)
    backends = set()
    for i in range(1000):
        key, other = ("a", "b") if i % 2 == 0 else ("b", "a")
        html = clients[key].get(f"/t/{world[key]['slug']}/devices/").get_data(as_text=True)
        found = set(re.findall(r"SN-(t-[0-9a-f]{8})-", html))
        assert found == {world[key]["slug"]}, f"request {i}: saw {found}"
        assert world[other]["slug"] not in html
        if i % 50 == 0:
            with app.app_context():
                from portal.extensions import db
                backends.add(db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar())
                db.session.rollback()
    assert 1 <= len(backends) <= 2, "PgBouncer's pool of two server connections served every request"
