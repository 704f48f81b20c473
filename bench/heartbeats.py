"""`make bench-agents`: device heartbeats per second under gunicorn (2 workers x 4 threads) on an
embedded PostgreSQL (instance/agents-bench), or on BENCH_DATABASE_URL (serving role) with
BENCH_MIGRATION_DATABASE_URL (owner role; defaults to the same URL).

Two phases of BENCH_SECONDS (15) each, from BENCH_CLIENTS (2) client threads per process in two
client processes, on keep-alive connections:
  1. gateway batches: each request reports 1,000 devices (target: >= 5,000 device heartbeats/s);
  2. single heartbeats: each request one device with its own credential (target: >= 400/s).
Every heartbeat keeps its device's status, so no audit row is written (as in the field, where
status changes are rare). Prints rates, latency percentiles and errors; exits 1 on any error or a
missed target. Not part of `make test`.
"""
from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEVICES = 5_000
SINGLES = 200
BATCH = 1_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the portal did not answer")


def prepare(env: dict) -> dict:
    """Migrate, then (once) a tenant with DEVICES devices, a gateway credential and SINGLES
    device credentials. Returns the secrets and the device ids."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from portal import create_app
    from portal.agents.credentials import hash_secret, new_secret
    from portal.agents.models import AgentCredential
    from portal.database.context import tenant_scope
    from portal.extensions import db
    from portal.sites.models import Site
    from portal.tenants.models import Tenant
    app = create_app()
    with app.app_context():
        upgrade()
        tenant = db.session.scalar(sa.select(Tenant).where(Tenant.slug == "bench-agents"))
        if tenant is None:
            tenant = Tenant(name="Bench agents", slug="bench-agents", plan="enterprise", max_devices=1_000_000,
                            max_sites=1000)
            db.session.add(tenant)
            db.session.flush()
        with tenant_scope(db.session, tenant.id, actor="bench:setup"):
            site = db.session.scalar(sa.select(Site).where(Site.tenant_id == tenant.id))
            if site is None:
                site = Site(tenant_id=tenant.id, name="Bench site", timezone="UTC")
                db.session.add(site)
                db.session.flush()
            db.session.execute(sa.text(
                "INSERT INTO devices (tenant_id, site_id, name, type, serial_number, status) "
                "SELECT :t, :s, 'bench device ' || n, 'sensor', 'BENCH-' || n, 'online' "
                "FROM generate_series(1, :n) n ON CONFLICT DO NOTHING"),
                {"t": tenant.id, "s": site.id, "n": DEVICES})
            ids = [str(i) for i in db.session.scalars(sa.text(
                "SELECT id FROM devices WHERE tenant_id = :t ORDER BY serial_number"), {"t": tenant.id})]
            # Fresh secrets each run (only hashes are stored): revoke, then issue.
            db.session.execute(sa.text("UPDATE agent_credentials SET revoked_at = now() "
                                       "WHERE tenant_id = :t AND revoked_at IS NULL"), {"t": tenant.id})
            secrets = []
            for n, device_id in enumerate(ids[:SINGLES + 1]):
                secret = new_secret()
                db.session.add(AgentCredential(tenant_id=tenant.id, device_id=device_id,
                                               secret_hash=hash_secret(secret), gateway=n == 0))
                secrets.append(secret)
            db.session.commit()
        db.engine.dispose()
    return {"gateway": secrets[0], "singles": secrets[1:], "devices": ids}


def _client(port: int, kind: str, work: dict, seconds: float, threads: int, proc: int, processes: int, out) -> None:
    """One client process: `threads` threads sending as fast as answers come back. Each sender has
    its own devices (a device does not send two heartbeats at the same instant; two gateways do not
    report the same devices), so no request waits for another's row locks."""
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    latencies, errors = [], []

    senders = threads * processes

    def run(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        k = proc * threads + n  # this sender's share
        mine = work["singles"][k::senders]
        window = work["devices"][k * BATCH:(k + 1) * BATCH]
        i = 0
        while time.monotonic() < stop:
            if kind == "batch":
                body = json.dumps({"devices": [{"device_id": d, "status": "online", "metrics": {"t": 21.5}}
                                               for d in window]})
                secret = work["gateway"]
            else:
                secret = mine[i % len(mine)]
                body = json.dumps({"status": "online", "firmware": "1.0.0", "metrics": {"t": 21.5}})
            i += 1
            began = time.perf_counter()
            try:
                if kind == "healthz":
                    conn.request("GET", "/healthz")
                else:
                    conn.request("POST", "/api/v1/agent/heartbeat", body=body, headers={
                        "Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
                ok = response.status == 200
            except OSError as exc:
                ok, data = False, str(exc).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = time.perf_counter() - began
            with lock:
                (latencies if ok else errors).append(elapsed if ok else data[:200])

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((latencies, [e.decode(errors="replace") if isinstance(e, bytes) else e for e in errors[:5]],
             len(errors)))


def phase(port: int, kind: str, work: dict, seconds: float, threads: int, processes: int = 2) -> dict:
    queue = multiprocessing.Queue()
    if kind == "batch" and threads * processes * BATCH > len(work["devices"]):
        raise SystemExit(f"at most {len(work['devices']) // BATCH} gateway senders")
    procs = [multiprocessing.Process(target=_client, args=(port, kind, work, seconds, threads, p, processes, queue))
             for p in range(processes)]
    began = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    wall = time.perf_counter() - began
    latencies = sorted(x for r in results for x in r[0])
    errors = sum(r[2] for r in results)
    samples = [e for r in results for e in r[1]]

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    per_request = BATCH if kind == "batch" else 1
    return {"requests": len(latencies), "errors": errors, "samples": samples[:3],
            "requests_s": len(latencies) / wall, "heartbeats_s": len(latencies) * per_request / wall,
            "p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "wall": wall}


def main() -> int:
    seconds = float(os.environ.get("BENCH_SECONDS", "15"))
    threads = int(os.environ.get("BENCH_CLIENTS", "2"))
    env = {**os.environ, "PORTAL_ENV": "development", "LOG_LEVEL": "WARNING"}
    if os.environ.get("BENCH_DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]
        env["MIGRATION_DATABASE_URL"] = os.environ.get("BENCH_MIGRATION_DATABASE_URL", env["DATABASE_URL"])
        where = "the given database"
    else:
        env.pop("DATABASE_URL", None)
        env["INSTANCE_PATH"] = str(ROOT / "instance" / "agents-bench")
        where = "an embedded PostgreSQL (instance/agents-bench)"
    work = prepare(env)  # this process holds the embedded server for the run
    port = free_port()
    web = subprocess.Popen([str(BIN / "gunicorn"), "--workers", "2", "--threads", "4", "--bind", f"127.0.0.1:{port}",
                            "--graceful-timeout", "10", "--log-level", "warning", "wsgi:app"], cwd=ROOT, env=env)
    try:
        wait_until_up(port)
        load = os.getloadavg()
        print(f"bench-agents: gunicorn (2 workers x 4 threads) on {where}; {os.cpu_count()} cores; "
              f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
        phase(port, "single", work, 2, threads)  # warm-up: connections, prepared statements
        batch = phase(port, "batch", work, seconds, max(1, threads // 2))
        single = phase(port, "single", work, seconds, threads)
        # For scale on a shared machine: the same server's cheapest database request (SELECT 1).
        baseline = phase(port, "healthz", work, min(seconds, 5), threads)
        load = os.getloadavg()
    finally:
        web.send_signal(signal.SIGTERM)
        try:
            web.wait(30)
        except subprocess.TimeoutExpired:
            web.kill()
    print(f"\n{'phase':22} {'requests':>9} {'req/s':>8} {'heartbeats/s':>13} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p99 ms':>7} {'errors':>6}")
    failed = False
    for name, r, target in (("gateway batches x1000", batch, 5000), ("single heartbeats", single, 400)):
        print(f"{name:22} {r['requests']:>9} {r['requests_s']:8.1f} {r['heartbeats_s']:13,.0f} {r['p50']:7.1f} "
              f"{r['p95']:7.1f} {r['p99']:7.1f} {r['errors']:>6}")
        for sample in r["samples"]:
            print(f"  error: {sample}")
        if r["errors"] or r["heartbeats_s"] < target:
            failed = True
            print(f"  below target ({target:,}/s) or errors")
    print(f"{'baseline: GET /healthz':22} {baseline['requests']:>9} {baseline['requests_s']:8.1f} {'':>13} "
          f"{baseline['p50']:7.1f} {baseline['p95']:7.1f} {baseline['p99']:7.1f} {baseline['errors']:>6}")
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
