"""`make test-cluster`: the cluster of `make cluster` (bench.cluster: HAProxy, two gunicorn nodes in
production settings, two job workers, PgBouncer, a primary and a streaming replica, Redis), driven
through the balancer by signed-in clients while its parts are broken one at a time:

- a web node killed (SIGKILL) and started again: errors only for requests that were in flight on it,
  none after; requests per second with one node and with two;
- a job worker killed in the middle of a tenant export: the export finishes once, on the other worker
  (the lost worker's job is requeued when its heartbeats stop), one email for it;
- PgBouncer restarted: pages work again at once, without restarting a node;
- the replica stopped: the heavy-read pages read the primary, without errors; started again, it serves
  them again.

Prints the figures (docs/performance.md, "The cluster"). Not part of `make test`: a few minutes.
"""
from __future__ import annotations

import re
import shutil
from collections import Counter
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

import psycopg
import pytest
import redis
import requests

from bench.cluster import ROOT, Cluster, http_status, port_free
from bench.pgnodes import libpq

PASSWORD = "portal-demo-2026"
TENANT = "acme-corp"
CLIENTS = 6
BULK_EVENTS = 300_000  # a tenant export of some seconds, to kill a worker in the middle of it


def free_base_port() -> int:
    for base in range(18100, 19000, 10):
        if all(port_free(base + i) for i in range(5)):
            return base
    raise RuntimeError("no five free ports")


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(port=free_base_port(), folder=ROOT / "instance" / "cluster-test")
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(c.folder, ignore_errors=True)  # a fresh cluster each run


def signed_in(cluster, email: str = "alice@acme.com") -> requests.Session:
    s = requests.Session()
    page = s.get(f"{cluster.base_url}/login", timeout=10).text
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    answer = s.post(f"{cluster.base_url}/login", data={"email": email, "password": PASSWORD, "csrf_token": token},
                    allow_redirects=False, timeout=30)
    assert answer.status_code == 303, answer.text[:500]
    return s


@dataclass
class Load:
    """CLIENTS signed-in sessions asking for `path` in a loop; every answer with its start and end time."""
    sessions: list
    path: str
    base: str
    results: list = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _run(self, s: requests.Session) -> None:
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                status = s.get(self.base + self.path, timeout=15, allow_redirects=False).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            self.results.append((start, time.monotonic(), status))

    def __enter__(self):
        self.threads = [threading.Thread(target=self._run, args=(s,), daemon=True) for s in self.sessions]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def ok_per_second(self, since: float, until: float) -> float:
        done = [r for r in self.results if since <= r[0] and r[1] <= until and r[2] == 200]
        return len(done) / (until - since)

    def errors(self) -> list:
        return [r for r in self.results if r[2] != 200]


def admin(cluster):
    return psycopg.connect(libpq(cluster.urls["admin"]), dbname="portal", autocommit=True)


def replica_transactions(cluster) -> int:
    with psycopg.connect(libpq(cluster.replica.admin_url()), autocommit=True) as conn:
        return conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'portal'"
                            ).fetchone()[0]


def test_web_node_killed_and_restarted(cluster):
    sessions = [signed_in(cluster) for _ in range(CLIENTS)]
    # A failed sign-in is counted in the cluster's Redis, where every node's rate limits are kept.
    s = requests.Session()
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"',
                      s.get(f"{cluster.base_url}/login", timeout=10).text).group(1)
    refused = s.post(f"{cluster.base_url}/login", data={"email": "nobody@example.com", "password": "wrong",
                                                        "csrf_token": token}, allow_redirects=False, timeout=30)
    assert refused.status_code >= 400
    assert redis.Redis.from_url(cluster.redis_url).keys("LIMITS:LIMITER/*login*")
    with Load(sessions, f"/t/{TENANT}/devices/", cluster.base_url) as load:
        time.sleep(2)
        t0 = time.monotonic()
        time.sleep(8)
        two_nodes = load.ok_per_second(t0, time.monotonic())
        killing_at = time.monotonic()
        cluster.kill_node(0)
        killed_at = time.monotonic()  # the node's processes are gone (SIGKILL to its process group, reaped)
        time.sleep(2)  # the balancer's check (every second) takes it out
        t1 = time.monotonic()
        time.sleep(8)
        one_node = load.ok_per_second(t1, time.monotonic())
        starting_at = time.monotonic()
        cluster.start_node(0)
        _wait_for(lambda: http_status(f"http://127.0.0.1:{cluster.node_ports[0]}/readyz") == 200, 60,
                  "the restarted node to be ready")
        restarted_at = time.monotonic()
        time.sleep(6)  # /readyz twice (rise 2), then both nodes again
        t2 = time.monotonic()
        time.sleep(6)
        again = load.ok_per_second(t2, time.monotonic())
    errors = load.errors()
    in_flight = [e for e in errors if e[0] <= killed_at and e[1] >= killing_at]
    kinds = Counter(e[2] for e in errors)
    print(f"\ncluster: {two_nodes:.0f} pages/s through the balancer with two nodes, {one_node:.0f} with one, "
          f"{again:.0f} after the restart; {len(load.results)} requests, {len(errors)} errors "
          f"({len(in_flight)} in flight on the killed node: {dict(kinds)}); node ready (/readyz) {restarted_at - starting_at:.1f} s after its start")
    assert errors == in_flight, f"errors not in flight at the kill: {[e for e in errors if e not in in_flight][:5]}"
    assert one_node > 0 and two_nodes > 0 and again > 0


def test_worker_killed_mid_export_pgbouncer_restarted_replica_stopped(cluster):
    owner = signed_in(cluster)
    with admin(cluster) as conn:
        tenant_id = conn.execute("SELECT id FROM tenants WHERE slug = %s", (TENANT,)).fetchone()[0]
        conn.execute("INSERT INTO analytics_events (tenant_id, occurred_at, event_type, properties) "
                     "SELECT %s, now() - (g %% 20) * interval '1 day', 'bulk.test', jsonb_build_object('n', g, "
                     "'note', repeat('x', 60)) FROM generate_series(1, %s) g", (tenant_id, BULK_EVENTS))
        written = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        t = time.monotonic()
    cluster.replica.wait_caught_up(60)
    print(f"\ncluster: the replica replayed a {BULK_EVENTS:,}-row insert {time.monotonic() - t:.2f} s after its commit")
    with psycopg.connect(libpq(cluster.replica.admin_url()), autocommit=True) as conn:
        assert conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (written,)).fetchone()[0]
    # Only worker 1 takes the export: worker 2 is stopped (gracefully) until the export runs.
    cluster._stop("worker2")
    page = owner.get(f"{cluster.base_url}/t/{TENANT}/settings/export", timeout=10).text
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    queued = owner.post(f"{cluster.base_url}/t/{TENANT}/settings/export", data={"csrf_token": token},
                        allow_redirects=False, timeout=10)
    assert queued.status_code == 303
    with admin(cluster) as conn:
        export_id = _wait_for(lambda: conn.execute(
            "SELECT id FROM tenant_exports WHERE tenant_id = %s AND status = 'running'", (tenant_id,)).fetchone(),
            60, "the export to start")[0]
    with admin(cluster) as conn:
        seen = conn.execute("SELECT coalesce(max(id), 0) FROM procrastinate_workers").fetchone()[0]
        cluster.start_worker(1)
        _wait_for(lambda: conn.execute("SELECT 1 FROM procrastinate_workers WHERE id > %s", (seen,)).fetchone(),
                  60, "worker 2 to start")
    cluster.kill_worker(0)
    killed_at = time.monotonic()
    with admin(cluster) as conn:
        assert conn.execute("SELECT status FROM tenant_exports WHERE id = %s", (export_id,)).fetchone()[0] == "running"

    # While the lost worker's job waits to be requeued: PgBouncer restarted under load.
    sessions = [signed_in(cluster) for _ in range(CLIENTS)]
    with Load(sessions, f"/t/{TENANT}/devices/", cluster.base_url) as load:
        time.sleep(2)
        restart_at = time.monotonic()
        cluster.restart_bouncer()
        restarted = time.monotonic()
        time.sleep(5)
    late = [e for e in load.errors() if e[0] > restarted + 1]
    bouncer_errors = len(load.errors())
    kinds = Counter(e[2] for e in load.errors())
    print(f"\ncluster: PgBouncer restarted in {restarted - restart_at:.2f} s under load: {bouncer_errors} errors "
          f"({dict(kinds)}) of {len(load.results)} requests, none later than a second after it was back")
    assert not late, late[:5]

    # The replica stopped under heavy reads (the audit viewer): they read the primary, no errors.
    with Load(sessions[:3], f"/t/{TENANT}/audit/", cluster.base_url) as load:
        time.sleep(2)
        before = replica_transactions(cluster)
        time.sleep(2)
        assert replica_transactions(cluster) > before  # the replica serves the audit viewer
        stop_at = time.monotonic()
        cluster.stop_replica()
        stopped = time.monotonic()
        time.sleep(4)
        t = time.monotonic()
        time.sleep(4)
        on_primary = load.ok_per_second(t, time.monotonic())
        cluster.start_replica()
        time.sleep(7)  # DATABASE_REPLICA_RETRY_SECONDS (5) after it was found down
        back = replica_transactions(cluster)
        time.sleep(2)
        assert replica_transactions(cluster) > back  # used again
    replica_errors = load.errors()
    print(f"cluster: replica stopped under audit-viewer load (fast shutdown took {stopped - stop_at:.1f} s): "
          f"{len(replica_errors)} errors of {len(load.results)} requests; {on_primary:.0f} pages/s on the primary "
          f"meanwhile; read from the replica again once restarted")
    assert all(e[0] <= stopped for e in replica_errors), replica_errors[:5]
    assert on_primary > 0

    # The export: finished once, by the other worker, with one email.
    with admin(cluster) as conn:
        status, rows = _wait_for(lambda: conn.execute(
            "SELECT status, rows FROM tenant_exports WHERE id = %s AND status <> 'running'", (export_id,)).fetchone(),
            240, "the export to finish on the other worker")
        emails = conn.execute("SELECT count(*) FROM email_outbox WHERE kind = 'tenant_export' AND "
                              "created_at > now() - interval '15 minutes'").fetchone()[0]
        attempts = conn.execute("SELECT attempts FROM procrastinate_jobs WHERE task_name = 'tenants.export' "
                                "ORDER BY id DESC LIMIT 1").fetchone()[0]
    print(f"cluster: the export cut off by the killed worker finished {time.monotonic() - killed_at:.0f} s later on "
          f"the other worker ({rows} rows, {attempts} attempts, {emails} email)")
    assert status == "done" and rows >= BULK_EVENTS and emails == 1


def _wait_for(probe, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
