"""`make run` in miniature: a fresh instance folder, serve, then SIGTERM stops web server and database;
after a crash (kill -9), the next run takes the orphaned database over and stops it when it ends."""
from __future__ import annotations

import json
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
@pytest.mark.parametrize("signum, via_make", [pytest.param(signal.SIGTERM, False, marks=pytest.mark.extended),
                                              (signal.SIGINT, False),
                                              pytest.param(signal.SIGTERM, True, marks=pytest.mark.extended)],
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


def start_devserver(instance: Path) -> tuple[subprocess.Popen, int]:
    """`python -m portal.devserver` (what `make run` execs) on a free port, once it answers."""
    port = free_port()
    env = {**os.environ, "PORTAL_ENV": "development", "INSTANCE_PATH": str(instance), "PORT": str(port),
           "HOST": "127.0.0.1"}
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "portal.devserver"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                if "Sign in" in r.read().decode():
                    return proc, port
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"the dev server did not answer: {proc.communicate()[0]}")


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="exercises the embedded database only")
@pytest.mark.extended
def test_a_run_after_a_crash_takes_over_the_orphaned_database(tmp_path):
    instance = tmp_path / "instance"
    pgdata = (instance / "pgdata").resolve()
    handles = pgdata / ".handle_pids.json"
    first, second = None, None
    try:
        first, _ = start_devserver(instance)
        first.kill()  # kill -9: no clean-up runs
        first.wait()  # reaped, so its PID is gone (not a zombie)
        postgres = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
        assert postgres.is_running(), "kill -9 leaves the embedded PostgreSQL running"
        assert json.loads(handles.read_text()) == [first.pid], "the crashed run's entry is left behind"

        second, _ = start_devserver(instance)
        assert postgres.is_running(), "the second run joins the running server"
        assert json.loads(handles.read_text()) == [second.pid], "the dead entry is dropped when a run joins"
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=90) == 0
        deadline = time.time() + 10
        while postgres_for(pgdata) and time.time() < deadline:
            time.sleep(0.2)
        assert postgres_for(pgdata) == [], "the clean exit after a crash left the embedded PostgreSQL running"
        assert json.loads(handles.read_text()) == []
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        for leftover in postgres_for(pgdata):
            leftover.terminate()
