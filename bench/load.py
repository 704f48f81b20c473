"""`make load`: gunicorn (2 workers) and a job worker on an embedded PostgreSQL with the sample data,
driven for LOAD_SECONDS (60) by LOAD_USERS (20) simulated tenant admins with locust, headless
(they arrive 2 a second: twenty argon2id sign-ins at the same instant would measure only that).
Prints requests/s, p50/p95/p99 per kind of request and the error count; exits 1 on any error.
Not part of `make test`. Its database lives in instance/load (removed by `make clean-db`)."""
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
        print(f"load: {users} users for {seconds} s against gunicorn (2 workers x 4 threads) on {host}", flush=True)
        subprocess.run([os.environ.get("LOCUST", "locust"), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
                        "--users", str(users), "--spawn-rate", "2", "--run-time", f"{seconds}s",
                        "--host", host, "--csv", str(out / "run"), "--only-summary", "--loglevel", "WARNING"],
                       cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL)
    finally:
        for proc in (web, worker):
            proc.send_signal(signal.SIGTERM)
        for proc in (web, worker):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return report(out / "run_stats.csv", out / "run_failures.csv")


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
