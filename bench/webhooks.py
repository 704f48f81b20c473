"""Webhook fan-out benchmark (not part of `make test`): deliveries per second through the job worker.

    .venv/bin/python -m bench.webhooks [--endpoints 10] [--events 300] [--concurrency 8]

In a database `portal_bench_webhooks` (embedded PostgreSQL under instance/pgbench, or on
BENCH_DATABASE_URL, a superuser URL), provisioned and migrated like the real one: one tenant with
`--endpoints` enabled webhook endpoints subscribed to device.created, all pointing at a
receiver on 127.0.0.1 in a process of its own (a ThreadingHTTPServer that verifies nothing and
answers 204, so the figure is the portal's side). `--events` events are emitted in one
transaction (the outbox: one log row and one job per endpoint and event), then a worker with
`--concurrency` jobs at once runs in burst mode until the queue is empty; the figure is
deliveries (signed, sent, answered, logged and committed) per second of that run. Writes
bench/out/webhooks.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DATABASE, OWNER, APP_ROLE = "portal_bench_webhooks", "portal_bench_owner", "portal_bench_app"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def receiver(port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def admin_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    from portal.database import embedded
    return embedded.admin_url(embedded.start(ROOT / "instance" / "pgbench"))


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--receiver", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        receiver(args.receiver)
        return 0

    from flask_migrate import upgrade

    from portal import create_app, keys
    from portal.database.context import tenant_scope
    from portal.database.provision import provision, url_for_role
    from portal.events import emit_many
    from portal.extensions import db
    from portal.integrations.models import Integration, LogEntry
    from portal.integrations.services import new_signing_secret, seal_credentials
    from portal.jobs.worker import run_async
    from portal.tenants.models import Tenant

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.webhooks", "--receiver", str(port)], cwd=ROOT)
    try:
        admin = admin_url()
        provision(admin, DATABASE, OWNER, APP_ROLE, fresh=True)
        config = {"PORTAL_ENV": "testing", "SECRET_KEY": "bench-" + "x" * 32, "LOG_LEVEL": "WARNING",
                  "DATABASE_URL": url_for_role(admin, APP_ROLE, DATABASE), "SERVER_NAME": None,
                  "MIGRATION_DATABASE_URL": url_for_role(admin, OWNER, DATABASE),
                  "INTEGRATIONS_ALLOW_PRIVATE": True, "DB_POOL_SIZE": args.concurrency + 2}
        app = create_app(config)
        with app.app_context():
            upgrade()
            tenant = Tenant(name="Bench", slug="bench-webhooks", plan="enterprise", max_integrations=1000)
            db.session.add(tenant)
            db.session.flush()
            keys.create_tenant_key(tenant.id)
            tenant_id = tenant.id
            with tenant_scope(db.session, tenant_id, actor="bench:setup"):
                for i in range(args.endpoints):
                    endpoint = Integration(tenant_id=tenant_id, name=f"Endpoint {i}", provider="webhook",
                                           enabled=True, config={"url": f"http://127.0.0.1:{port}/hook/{i}",
                                                                 "events": ["device.created"]})
                    db.session.add(endpoint)
                    db.session.flush()
                    seal_credentials(endpoint, {"signing_secret": new_signing_secret()})
                db.session.commit()
                # device.created is not an ordered type: its deliveries fan out across the worker's
                # slots (an ordered type runs one at a time per endpoint, so up to `--endpoints` at once).
                start = time.perf_counter()
                emit_many(tenant_id, [("device.created", {"device_id": f"00000000-0000-0000-0000-{n:012d}",
                                                          "site_id": None, "name": f"Device {n}", "status": "online"})
                                      for n in range(args.events)])
                db.session.commit()
                queued_in = time.perf_counter() - start
        deliveries = args.endpoints * args.events
        log(f"queued {deliveries:,} deliveries in {queued_in:.2f} s; running the worker "
            f"(concurrency {args.concurrency})")
        worker_app = create_app(config)
        start = time.perf_counter()
        asyncio.run(run_async(worker_app, concurrency=args.concurrency, wait=False, install_signal_handlers=False))
        elapsed = time.perf_counter() - start
        with app.app_context(), tenant_scope(db.session, tenant_id, actor="bench:setup"):
            states = dict(db.session.execute(sa.select(LogEntry.state, sa.func.count()).group_by(LogEntry.state)).all())
        rate = states.get("succeeded", 0) / elapsed
        log(f"{states} in {elapsed:.1f} s: {rate:,.0f} deliveries/s")
        OUT.mkdir(parents=True, exist_ok=True)
        result = {"endpoints": args.endpoints, "events": args.events, "deliveries": deliveries,
                  "concurrency": args.concurrency, "queue_seconds": round(queued_in, 2),
                  "worker_seconds": round(elapsed, 2), "states": states, "deliveries_per_second": round(rate, 1),
                  "cpus": os.cpu_count()}
        (OUT / "webhooks.json").write_text(json.dumps(result, indent=2))
        return 0 if states.get("succeeded", 0) == deliveries else 1
    finally:
        server.terminate()
        server.wait(5)


if __name__ == "__main__":
    raise SystemExit(main())
