"""Audit trail benchmark (not part of `make test`): the chain's write overhead per change and the
export's memory at 1,000,000 rows.

    .venv/bin/python -m bench.audit                 # or: make bench-audit
    .venv/bin/python -m bench.audit --rows 1000000 --changes 2000

In a database `portal_bench_audit` on the embedded PostgreSQL under instance/pgbench (or on
BENCH_DATABASE_URL, a superuser URL), provisioned and migrated like the real one:

1. Write overhead: the same change (a device's status, one UPDATE) committed N times as the
   serving role, (a) without an audit row, (b) with the row inserted as before the chain (a
   plain INSERT, into a temporary copy of audit_logs with its former indexes), (c) with `audit.record` (audit_append:
   advisory lock, head lookup, SHA-256, INSERT). p50/p95 per transaction; (c)-(b) is the chain's cost.
2. Export memory: the tenant is filled to --rows audit rows (kept between runs), then a fresh
   process signs in and streams the CSV and JSON Lines exports of all of them through the Flask
   test client, sampling its resident memory every 10,000 rows. Reports the baseline, the peak
   and the growth, and the same for an export of 111,111 of them: the same growth means constant memory.

3. Viewer: the median time (test client, 20 runs) of the viewer's fragment at the full tenant:
   page 1, a deep page, one resource, one action, a date range, free text.

Writes bench/out/audit.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DATABASE, OWNER, APP_ROLE = "portal_bench_audit", "portal_bench_owner", "portal_bench_app"
SLUG, EMAIL, PASSWORD = "audit-bench", "audit-bench@example.com", "bench-password-not-secret"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def admin_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    from portal.database import embedded
    return embedded.admin_url(embedded.start(ROOT / "instance" / "pgbench"))


def make_app(admin: str):
    from portal import create_app
    from portal.database.provision import url_for_role
    return create_app({"PORTAL_ENV": "testing", "SECRET_KEY": "bench-" + "x" * 32, "LOG_LEVEL": "WARNING",
                       "DATABASE_URL": url_for_role(admin, APP_ROLE, DATABASE), "SERVER_NAME": None,
                       "MIGRATION_DATABASE_URL": url_for_role(admin, OWNER, DATABASE),
                       "RATELIMIT_LOGIN": "10000 per minute"})


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def setup(admin: str) -> dict:
    from flask_migrate import upgrade
    from sqlalchemy import select

    from portal.accounts.models import User
    from portal.accounts.passwords import hash_password
    from portal.database.context import tenant_scope
    from portal.database.provision import provision
    from portal.devices.models import Device, DeviceStatus, DeviceType
    from portal.extensions import db
    from portal.tenancy.models import Membership, MembershipRole
    from portal.sites.models import Site
    from portal.tenants.models import Tenant
    provision(admin, DATABASE, OWNER, APP_ROLE)
    app = make_app(admin)
    with app.app_context():
        upgrade()
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == SLUG))
        if tenant is None:
            user = User(email=EMAIL, name="Audit Bench", password_hash=hash_password(PASSWORD))
            tenant = Tenant(name="Audit Bench", slug=SLUG)
            db.session.add_all([user, tenant])
            db.session.flush()
            with tenant_scope(db.session, tenant.id, actor="bench:setup"):
                db.session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=MembershipRole.OWNER))
                site = Site(tenant_id=tenant.id, name="Bench Site")
                db.session.add(site)
                db.session.flush()
                db.session.add(Device(tenant_id=tenant.id, site_id=site.id, name="Bench Device",
                                      type=DeviceType.SENSOR, serial_number="AB-1", status=DeviceStatus.ONLINE))
                db.session.flush()  # inside the tenant scope: RLS checks rows as they are written
            db.session.commit()
        user_id = db.session.scalar(select(User.id).where(User.email == EMAIL))
        with tenant_scope(db.session, tenant.id, actor="bench:setup"):
            device_id = db.session.scalar(select(Device.id).where(Device.tenant_id == tenant.id))
        db.session.commit()
        return {"tenant_id": tenant.id, "user_id": user_id, "device_id": device_id}


def overhead(admin: str, world: dict, changes: int) -> dict:
    from sqlalchemy import text

    from portal import audit
    from portal.database.context import tenant_scope
    from portal.extensions import db
    app = make_app(admin)
    tenant, user, device = world["tenant_id"], world["user_id"], world["device_id"]
    change = text("UPDATE devices SET status = CAST(:s AS device_status) WHERE tenant_id = :t AND id = :d")
    plain = text("INSERT INTO audit_plain (tenant_id, user_id, action, resource_type, resource_id, before, after,"
                 " details, seq, prev_hash, row_hash) VALUES (:t, :u, 'device.status', 'device', :d,"
                 " CAST(:b AS jsonb), CAST(:a AS jsonb), '{}', 0, '', '')")
    results = {}
    with app.test_request_context(headers={"User-Agent": "bench"}):
        # The table as it was before the chain: same columns, the same four indexes.
        db.session.execute(text("CREATE TEMP TABLE IF NOT EXISTS audit_plain (LIKE audit_logs INCLUDING DEFAULTS)"))
        for columns in ("tenant_id, created_at", "tenant_id, resource_type, resource_id", "tenant_id, user_id"):
            db.session.execute(text(f"CREATE INDEX ON audit_plain ({columns})"))
        db.session.execute(text("CREATE INDEX ON audit_plain USING gin (details)"))
        db.session.execute(text("ALTER TABLE audit_plain ADD PRIMARY KEY (tenant_id, id)"))
        db.session.commit()
        # Round-robin, so the three modes share whatever else the machine is doing; the first
        # 100 rounds warm up (statement caches, plpgsql) and are not counted.
        modes = ("none", "plain", "chained")
        times: dict[str, list[float]] = {m: [] for m in modes}
        for i in range(changes + 100):
            status = ("online", "offline")[i % 2]
            for mode in modes:
                started = time.perf_counter()
                with tenant_scope(db.session, tenant, actor="bench:setup"):
                    db.session.execute(change, {"s": status, "t": tenant, "d": device})
                    if mode == "plain":
                        db.session.execute(plain, {"t": tenant, "u": user, "d": str(device),
                                                   "b": json.dumps({"status": "x"}), "a": json.dumps({"status": status})})
                    elif mode == "chained":
                        audit.record(tenant, user, "device.status", "device", device, before={"status": "x"},
                                     after={"status": status})
                    db.session.commit()
                if i >= 100:
                    times[mode].append((time.perf_counter() - started) * 1000)
        for mode in modes:
            values = sorted(times[mode])
            results[mode] = {"p50_ms": round(statistics.median(values), 3),
                             "p95_ms": round(values[int(len(values) * 0.95)], 3), "n": len(values)}
    results["chain_cost_p50_ms"] = round(results["chained"]["p50_ms"] - results["plain"]["p50_ms"], 3)
    results["audit_cost_p50_ms"] = round(results["chained"]["p50_ms"] - results["none"]["p50_ms"], 3)
    return results


def fill(admin: str, world: dict, rows: int) -> dict:
    from sqlalchemy import text

    from portal import audit
    from portal.database.context import tenant_scope
    from portal.extensions import db
    app = make_app(admin)
    with app.app_context():
        with tenant_scope(db.session, world["tenant_id"], actor="bench:setup"):
            have = db.session.execute(text("SELECT count(*) FROM audit_logs")).scalar()
        db.session.commit()
        missing = rows - have
        if missing <= 0:
            return {"rows": have, "generated": 0}
        log(f"generating {missing} audit rows (kept for later runs)")
        started = time.perf_counter()
        batch = 5000
        for start in range(0, missing, batch):
            n = min(batch, missing - start)
            with tenant_scope(db.session, world["tenant_id"], actor="bench:setup"):
                audit.record_many(world["tenant_id"], world["user_id"], "device.update", "device",
                                  [(uuid.uuid4(), {"name": f"Bench device {start + i}", "status": "online"},
                                    {"name": f"Bench device {start + i}", "status": "maintenance",
                                     "firmware_version": "1.2.3"}) for i in range(n)], source="bench")
            db.session.commit()
            if (start // batch) % 20 == 0:
                log(f"  {start + n} rows")
        seconds = time.perf_counter() - started
        return {"rows": rows, "generated": missing, "seconds": round(seconds, 1),
                "rows_per_second": round(missing / seconds)}


def export_run(admin: str, fmt: str, limit_query: str) -> dict:
    """In its own process: sign in, stream one export, sample resident memory."""
    app = make_app(admin)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    import re
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}).status_code == 303
    client.get(f"/t/{SLUG}/audit/")  # warm: templates, statement caches
    baseline = rss_mb()
    peak, lines, size = baseline, 0, 0
    started = time.perf_counter()
    response = client.get(f"/t/{SLUG}/audit/export.{fmt}{limit_query}", buffered=False)
    assert response.status_code == 200, response.status_code
    next_sample = 10_000
    for chunk in response.iter_encoded():
        size += len(chunk)
        lines += chunk.count(b"\n")
        if lines >= next_sample:
            peak = max(peak, rss_mb())
            next_sample += 10_000
    response.close()
    seconds = time.perf_counter() - started
    peak = max(peak, rss_mb())
    return {"format": fmt, "filter": limit_query or "(all)", "lines": lines, "mb": round(size / 2**20, 1),
            "seconds": round(seconds, 1), "rss_baseline_mb": round(baseline, 1), "rss_peak_mb": round(peak, 1),
            "rss_growth_mb": round(peak - baseline, 1),
            "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def viewer_run(admin: str) -> dict:
    """In its own process: server time of viewer pages at the full tenant (median of 20)."""
    app = make_app(admin)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    import re
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}).status_code == 303
    html = client.get(f"/t/{SLUG}/audit/?action=device.update", headers={"HX-Request": "true"}).get_data(as_text=True)
    resource = re.search(r"resource=([0-9a-f-]{36})", html).group(1)
    urls = {"page 1": "", "page at row 500,000": "?after=500000", "one resource": f"?type=device&resource={resource}",
            "one action, page 1": "?action=device.status", "dates (one day)": "?from=2026-01-01&to=2026-01-01",
            "text, common": "?q=bench+device+1", "text, rare": "?q=no-such-thing"}
    out = {}
    for label, query in urls.items():
        times = []
        for _ in range(20):
            started = time.perf_counter()
            response = client.get(f"/t/{SLUG}/audit/{query}", headers={"HX-Request": "true"})
            response.get_data()
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        out[label] = round(statistics.median(times), 1)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--no-exports", action="store_true", help="skip the export measurements (minutes)")
    parser.add_argument("--export", metavar="FMT", help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--query", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("PORTAL_ENV", "testing")
    admin = admin_url()
    if args.export == "viewer":
        print(json.dumps(viewer_run(admin)))
        return 0
    if args.export:
        print(json.dumps(export_run(admin, args.export, args.query)))
        return 0
    world = setup(admin)
    results = {"machine": f"{os.cpu_count()} cores, {sys.platform}", "overhead": None, "fill": None, "exports": []}
    log(f"write overhead: {args.changes} changes per mode")
    results["overhead"] = overhead(admin, world, args.changes)
    log(json.dumps(results["overhead"]))
    results["fill"] = fill(admin, world, args.rows)
    log(json.dumps(results["fill"]))
    # And a smaller export for comparison: the rows whose device name contains "Bench device 1" (111,111).
    for fmt, query in () if args.no_exports else (("csv", ""), ("jsonl", ""), ("csv", "?q=Bench+device+1")):
        child = subprocess.run([sys.executable, "-m", "bench.audit", "--export", fmt, "--query", query],
                               capture_output=True, text=True, cwd=ROOT)
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            return 1
        outcome = json.loads(child.stdout.strip().splitlines()[-1])
        results["exports"].append(outcome)
        log(json.dumps(outcome))
    child = subprocess.run([sys.executable, "-m", "bench.audit", "--export", "viewer"], capture_output=True,
                           text=True, cwd=ROOT)
    if child.returncode != 0:
        print(child.stderr, file=sys.stderr)
        return 1
    results["viewer_ms"] = json.loads(child.stdout.strip().splitlines()[-1])
    log(json.dumps(results["viewer_ms"]))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "audit.json").write_text(json.dumps(results, indent=2, default=str))
    log(f"written {OUT / 'audit.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
