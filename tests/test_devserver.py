"""`make run` in miniature: a fresh instance folder, serve, then SIGTERM stops web server and database."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_for(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="exercises the embedded database only")
@pytest.mark.parametrize("signum, via_make", [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)],
                         ids=["SIGTERM", "Ctrl-C", "SIGTERM to make run"])
def test_dev_server_sets_up_serves_and_stops_cleanly(tmp_path, signum, via_make):
    port = free_port()
    env = {**os.environ, "PORTAL_ENV": "development", "INSTANCE_PATH": str(tmp_path / "instance"),
           "PORT": str(port), "HOST": "127.0.0.1"}
    env.pop("DATABASE_URL", None)
    command = ["make", "--no-print-directory", "run"] if via_make else [sys.executable, "-m", "portal.devserver"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, body = time.time() + 90, None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.3)
        assert body and "Sign in" in body, proc.stdout.read() if proc.poll() is not None else "no answer"
        pgdata = (tmp_path / "instance" / "pgdata").resolve()
        assert postgres_for(pgdata), "the embedded PostgreSQL is not running"
        deadline, output = time.time() + 30, ""
        while "Starting worker" not in output and time.time() < deadline:
            output += proc.stdout.readline()
        assert "Starting worker" in output, "no job worker started beside the web server"
        proc.send_signal(signum)
        code = proc.wait(timeout=90)  # stopping PostgreSQL can be slow on a busy machine
        assert code == (-signal.SIGTERM if via_make else 0)  # make itself dies by the signal; its child stops cleanly
        deadline = time.time() + 10
        while postgres_for(pgdata) and time.time() < deadline:
            time.sleep(0.2)
        assert postgres_for(pgdata) == [], f"{signum!r} left the embedded PostgreSQL running"
        output += proc.stdout.read()  # the request's line may come before or after the worker's
        # One log line per request (the portal's, not werkzeug's too), and the sample password.
        assert len([line for line in output.splitlines() if "GET /login" in line]) == 1, output
        assert "portal-demo-2026" in output or os.environ.get("SEED_PASSWORD", "") in output, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for leftover in postgres_for((tmp_path / "instance" / "pgdata").resolve()):
            leftover.terminate()  # a failed run must not leave a server behind
