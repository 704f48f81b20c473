"""`make load`: gunicorn (2 workers) and a job worker on an embedded PostgreSQL with the sample data,
driven for LOAD_SECONDS (60) by LOAD_USERS (20) simulated tenant admins with locust, headless
(they arrive 2 a second: twenty argon2id sign-ins at the same instant would measure only that).
Prints requests/s, p50/p95/p99 per kind of request and the error count; exits 1 on any error.
Not part of `make test`. Its database lives in instance/load (removed by `make clean-db`).

LOAD_SIGNINS_PER_SECOND=2 adds the sign-in storm (issue 27): that many extra users each signing in
once a second beside the admins. Then the working pages' p95 (every request but the sign-in POSTs;
target under 100 ms) and the sign-ins' latency are reported apart, and a missed page target fails."""
from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the portal did not answer at {url}")


def main() -> int:
    users, seconds = int(os.environ.get("LOAD_USERS", 20)), int(os.environ.get("LOAD_SECONDS", 60))
    storm = int(os.environ.get("LOAD_SIGNINS_PER_SECOND") or 0)
    instance = ROOT / "instance" / "load"
    env = {**os.environ, "PORTAL_ENV": "development", "INSTANCE_PATH": str(instance), "LOG_LEVEL": "WARNING",
           # Every simulated user signs in from 127.0.0.1: the per-address limit is not what is measured.
           "RATELIMIT_LOGIN": "100000 per minute"}
    env.pop("DATABASE_URL", None)
    # This process holds the embedded server for the run: migrate and seed it, then start the others.
    sys.path.insert(0, str(ROOT))
    os.environ.update(env)
    from flask_migrate import upgrade

    from portal import create_app
    from portal.extensions import db
    from portal.seeding import load_sample
    app = create_app()
    with app.app_context():
        upgrade()
        if load_sample(app.config["SEED_PASSWORD"]):
            db.session.commit()
        db.engine.dispose()

    port = free_port()
    host = f"http://127.0.0.1:{port}"
    out = instance / "locust"
    out.mkdir(parents=True, exist_ok=True)
    web = subprocess.Popen([str(BIN / "gunicorn"), "--workers", "2", "--threads", "4", "--bind", f"127.0.0.1:{port}",
                            "--graceful-timeout", "10", "wsgi:app"], cwd=ROOT, env=env)
    worker = subprocess.Popen([str(BIN / "flask"), "--app", "wsgi", "worker"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"{host}/login")
        print(f"load: {users} users for {seconds} s against gunicorn (2 workers x 4 threads) on {host}"
              + (f", plus {storm} sign-ins per second" if storm else ""), flush=True)
        classes = ["TenantAdmin"]
        if storm:
            # Locust shares users out by weight; a fixed count gives the storm exactly `storm` users.
            env["LOCUST_STORM_USERS"] = str(storm)
            classes.append("SignInStorm")
        groups = out / "groups.json"
        groups.unlink(missing_ok=True)
        subprocess.run([os.environ.get("LOCUST", "locust"), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
                        "--users", str(users + storm), "--spawn-rate", "2", "--run-time", f"{seconds}s",
                        "--host", host, "--csv", str(out / "run"), "--only-summary", "--loglevel", "WARNING",
                        *classes], cwd=ROOT, env={**env, "LOAD_GROUPS_FILE": str(groups)}, check=False,
                       stdout=subprocess.DEVNULL)
    finally:
        for proc in (web, worker):
            proc.send_signal(signal.SIGTERM)
        for proc in (web, worker):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    failed = report(out / "run_stats.csv", out / "run_failures.csv")
    if groups.exists():
        failed |= storm_report(groups, storm)
    return failed


def storm_report(groups: Path, storm: int) -> int:
    """The working pages and the sign-ins apart: with the storm, the pages' p95 must stay under 100 ms."""
    import json
    import statistics
    data = json.loads(groups.read_text())

    def pct(values, q):
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")
    pages, signins = data["pages"], data["sign-ins"]
    print(f"\n{f'sign-in storm ({storm}/s)' if storm else 'no storm'}: pages {len(pages)} requests, p50 {statistics.median(pages):.0f} ms, "
          f"p95 {pct(pages, 0.95):.0f} ms (target < 100 ms); sign-ins {len(signins)}, "
          f"p50 {statistics.median(signins):.0f} ms, p95 {pct(signins, 0.95):.0f} ms, p99 {pct(signins, 0.99):.0f} ms")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if not storm or pct(pages, 0.95) < 100 else 1


def report(stats: Path, failures: Path) -> int:
    rows = list(csv.DictReader(stats.open()))
    print(f"\n{'kind':32} {'requests':>9} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>7}")
    total_errors = 0
    for row in rows:
        name = "ALL" if row["Name"] == "Aggregated" else f"{row['Type']} {row['Name']}"
        errors = int(row["Failure Count"])
        total_errors += errors if row["Name"] != "Aggregated" else 0
        print(f"{name[:32]:32} {row['Request Count']:>9} {float(row['Requests/s']):7.1f} {row['50%']:>7} "
              f"{row['95%']:>7} {row['99%']:>7} {errors:>7}")
    for failure in csv.DictReader(failures.open()) if failures.exists() else []:
        print(f"error: {failure['Method']} {failure['Name']}: {failure['Error']} (x{failure['Occurrences']})")
    print(f"\nerrors: {total_errors}")
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
