"""Pages per second under a real server: the portal against a bare app doing the same work.

    .venv/bin/python -m bench.http                       # or: make bench-http
    .venv/bin/python -m bench.http --rounds 5 --seconds 20 --connections 20

On the `make bench` data set (generated first if missing; tenant bench-0000, 100,000 devices),
it starts two gunicorn servers with 2 sync workers each:

- the portal (production settings, every extension and hook; bench/http_apps.py:portal);
- the bare app (Flask + psycopg_pool + Jinja: cookie session, one session lookup by hashed
  token, one transaction with set_config and the portal's own compiled page SQL, the rows
  rendered with the portal's row template; bench/http_apps.py:bare),

signs in as the bench owner (one session record; both apps read the same cookie), and drives
each path with wrk (`-t2 -cN -dS --latency`), signed in, in alternating rounds (the order flips
every round), so drift on a shared machine hits both alike:

- fragment: GET /t/bench-0000/devices/ with HX-Request (the 50-row list fragment);
- page: the full device page; the bare app serves the portal's page chrome, captured once, around
  the same fragment (chrome that costs nothing).

Before and after every wrk run one request checks the answer is a 200 with device rows (a lost
session would show as redirects, which wrk does not count as errors). Reports requests/s, p50,
p99, errors (socket errors and non-2xx/3xx) and portal/bare per round; writes
bench/out/http.md and bench/out/http.json. Without wrk (apt package `wrk`) it falls back to
a threaded Python client, which competes harder for the CPU: its figures are not comparable.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from bench.devices import BIG, OUT, PASSWORD, ROOT, admin_url, generate, log, people

SECRET = "bench-http-" + "s" * 32
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, cookie: str, hx: bool) -> tuple[int, bytes]:
    headers = {"Cookie": cookie} | ({"HX-Request": "true"} if hx else {})
    req = urllib.request.Request(url, headers=headers)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def wait_until_up(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"no answer at {url}")


def sign_in(env: dict) -> tuple[str, str, str]:
    """A session of the bench owner (cookie), and the portal's fragment and page (for the shell)."""
    os.environ.update(env)
    from bench.http_apps import portal
    app = portal()
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    r = client.post("/login", data={"email": "bench-owner@example.com", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303, f"bench sign-in failed: {r.status_code}"
    url = f"/t/{BIG}/devices/"
    fragment = client.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
    full = client.get(url).get_data(as_text=True)
    cookie = client.get_cookie("portal_session").value
    with app.app_context():
        from portal.extensions import db
        db.engine.dispose()
    return f"portal_session={cookie}", fragment, full


def page_shell(fragment: str, full: str) -> str:
    """The full page around the fragment, split by a NUL for the bare app."""
    at = full.find(fragment)
    if at < 0:
        raise SystemExit("the full page does not contain the fragment as served: cannot build the bare page")
    return full[:at] + "\x00" + full[at + len(fragment):]


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * UNITS[unit]


def run_wrk(url: str, cookie: str, hx: bool, connections: int, seconds: int) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s",
           "-H", f"Cookie: {cookie}"] + (["-H", "HX-Request: true"] if hx else []) + [url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    pct = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.M))
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1])
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "p50": _ms(pct["50"]), "p99": _ms(pct["99"]), "errors": socket_errors + non2xx, "raw": out}


def run_python(url: str, cookie: str, hx: bool, connections: int, seconds: int) -> dict:
    """Fallback without wrk: `connections` threads with keep-alive-less GETs, like wrk against
    gunicorn's sync workers (which close every connection)."""
    import http.client
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    latencies: list[float] = []
    errors = [0]
    stop = time.perf_counter() + seconds
    headers = {"Cookie": cookie} | ({"HX-Request": "true"} if hx else {})

    def worker():
        while time.perf_counter() < stop:
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                conn.request("GET", parts.path, headers=headers)
                response = conn.getresponse()
                response.read()
                conn.close()
                if response.status >= 400:
                    errors[0] += 1
            except OSError:
                errors[0] += 1
            latencies.append((time.perf_counter() - started) * 1000)
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ordered = sorted(latencies)
    return {"rps": len(latencies) / seconds, "requests": len(latencies), "p50": ordered[len(ordered) // 2],
            "p99": ordered[int(len(ordered) * 0.99)], "errors": errors[0], "raw": ""}


def check(url: str, cookie: str, hx: bool) -> None:
    status, body = get(url, cookie, hx)
    if status != 200 or b'<td class="name">' not in body:
        raise SystemExit(f"{url} answered {status} without device rows: not signed in, or broken")


def serve(target: str, port: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "gunicorn"), "--workers", "2", "--worker-class", "sync", "--bind",
                             f"127.0.0.1:{port}", "--backlog", "2048", "--graceful-timeout", "5",
                             "--log-level", "warning", target], cwd=ROOT, env=env)


TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def _tree(root: int) -> list[int]:
    """`root` and its descendants (gunicorn's master and workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, ppid = int(stat.parent.name), int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _postgres() -> list[int]:
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return pids


def cpu_now(server: subprocess.Popen) -> dict:
    """CPU seconds so far of the app's processes and of every PostgreSQL process (Linux /proc):
    where a request's cost goes when the load tool, the app and the database share the cores."""
    if not Path("/proc/self/stat").exists():
        return {}
    return {"app": sum(_ticks(p) for p in _tree(server.pid)) / TICK,
            "postgres": sum(_ticks(p) for p in _postgres()) / TICK}


def summarise(runs: list[dict]) -> dict:
    summary = {"rps": statistics.median(r["rps"] for r in runs), "p50": statistics.median(r["p50"] for r in runs),
               "p99": statistics.median(r["p99"] for r in runs), "errors": sum(r["errors"] for r in runs),
               "requests": sum(r["requests"] for r in runs)}
    for key in ("cpu_app_ms", "cpu_postgres_ms"):
        if all(key in r for r in runs):
            summary[key] = statistics.median(r[key] for r in runs)
    return summary


def _cpu(summary: dict) -> str:
    if "cpu_app_ms" not in summary:
        return "–"
    return f"{summary['cpu_app_ms']:.2f} + {summary['cpu_postgres_ms']:.2f} ms"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per path")
    parser.add_argument("--seconds", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--paths", default="fragment,page")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per app and path")
    args = parser.parse_args(argv)
    tool = run_wrk if shutil.which("wrk") else run_python
    if tool is run_python:
        log("wrk not found (apt-get install wrk): falling back to a Python client; figures are not comparable.")
    admin = admin_url()  # this process holds the embedded server for the run
    generate(admin, False)
    world = people(admin)
    env = {**os.environ, "BENCH_ADMIN_URL": admin, "BENCH_SECRET_KEY": SECRET, "BENCH_SLUG": BIG,
           "BENCH_TENANT_ID": str(world["tenant_id"]), "PYTHONPATH": str(ROOT)}
    cookie, fragment, full = sign_in(env)
    OUT.mkdir(parents=True, exist_ok=True)
    shell = OUT / "page-shell.html"
    shell.write_text(page_shell(fragment, full))
    env["BENCH_PAGE_SHELL"] = str(shell)
    ports = {"portal": free_port(), "bare": free_port()}
    servers = {"portal": serve("bench.http_apps:portal()", ports["portal"], env),
               "bare": serve("bench.http_apps:bare()", ports["bare"], env)}
    load_start = os.getloadavg()
    results: dict = {}
    try:
        paths = [p for p in args.paths.split(",") if p]
        for app, port in ports.items():
            wait_until_up(f"http://127.0.0.1:{port}/t/{BIG}/devices/")
            for path in paths:
                url, hx = f"http://127.0.0.1:{port}/t/{BIG}/devices/", path == "fragment"
                check(url, cookie, hx)
                if args.warmup:
                    tool(url, cookie, hx, args.connections, args.warmup)
        log(f"portal on :{ports['portal']}, bare on :{ports['bare']}; {args.rounds} rounds of {args.seconds} s "
            f"per app and path, {args.connections} connections, {tool.__name__[4:]}; load {load_start[0]:.2f}")
        for rnd in range(args.rounds):
            for path in paths:
                order = ["portal", "bare"] if rnd % 2 == 0 else ["bare", "portal"]
                for app in order:
                    url, hx = f"http://127.0.0.1:{ports[app]}/t/{BIG}/devices/", path == "fragment"
                    check(url, cookie, hx)
                    before = cpu_now(servers[app])
                    r = tool(url, cookie, hx, args.connections, args.seconds)
                    after = cpu_now(servers[app])
                    for part in before:  # CPU ms per request, this app's processes and PostgreSQL's
                        r[f"cpu_{part}_ms"] = (after[part] - before[part]) * 1000 / max(r["requests"], 1)
                    check(url, cookie, hx)
                    r["load"] = os.getloadavg()[0]
                    results.setdefault(path, {}).setdefault(app, []).append(r)
                    cpu = (f"  CPU/request: app {r['cpu_app_ms']:.2f} ms, PostgreSQL {r['cpu_postgres_ms']:.2f} ms"
                           if "cpu_app_ms" in r else "")
                    log(f"round {rnd + 1} {path:8} {app:6} {r['rps']:8.1f} req/s  p50 {r['p50']:6.1f} ms  "
                        f"p99 {r['p99']:6.1f} ms  errors {r['errors']}  (load {r['load']:.2f}){cpu}")
    finally:
        for proc in servers.values():
            proc.send_signal(signal.SIGTERM)
        for proc in servers.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    load_end = os.getloadavg()
    lines = [f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, {os.cpu_count()} cores, load average "
             f"{load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end (1-minute); gunicorn 2 sync workers "
             f"per app, {tool.__name__[4:]} {args.connections} connections x {args.seconds} s, {args.rounds} "
             "alternating rounds (medians over rounds; ratio = portal/bare of the same round).", "",
             "| Path | Portal req/s | p50 | p99 | Bare req/s | p50 | p99 | Errors (portal, bare) "
             "| Portal/bare req/s (median, range) | p99 portal/bare | CPU/request portal: app + PostgreSQL "
             "| bare: app + PostgreSQL |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    summary = {}
    for path, apps in results.items():
        p, b = summarise(apps["portal"]), summarise(apps["bare"])
        ratios = [x["rps"] / y["rps"] for x, y in zip(apps["portal"], apps["bare"])]
        summary[path] = {"portal": p, "bare": b, "ratios": ratios, "ratio": statistics.median(ratios),
                         "p99_ratio": p["p99"] / b["p99"]}
        lines.append(f"| {path} | {p['rps']:.0f} | {p['p50']:.1f} ms | {p['p99']:.1f} ms | {b['rps']:.0f} | "
                     f"{b['p50']:.1f} ms | {b['p99']:.1f} ms | {p['errors']}, {b['errors']} | "
                     f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}) | "
                     f"{p['p99'] / b['p99']:.2f} | {_cpu(p)} | {_cpu(b)} |")
    text = "\n".join(lines) + "\n"
    (OUT / "http.md").write_text(text)
    (OUT / "http.json").write_text(json.dumps({"summary": summary, "runs": {
        path: {app: [{k: v for k, v in r.items() if k != "raw"} for r in runs] for app, runs in apps.items()}
        for path, apps in results.items()}, "load": [load_start, load_end]}, indent=2))
    print("\n" + text)
    log(f"Wrote {OUT / 'http.md'} and http.json.")
    errors = sum(s["portal"]["errors"] + s["bare"]["errors"] for s in summary.values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
