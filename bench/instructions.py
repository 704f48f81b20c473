"""Instructions per request, counted by valgrind's callgrind: the app process's own work,
repeatable to the instruction whatever else the machine is doing (wall-clock figures on a
shared 2-core VM move by ±20% from one run to the next).

    .venv/bin/python -m bench.instructions            # or: make bench-instructions
    .venv/bin/python -m bench.instructions --requests 50

On the `make bench` data set, signed in as the bench owner, through each app's WSGI callable
(Flask's test client, in one process, nothing else running in it): the portal as `make
bench-http` serves it (production settings, bench/http_apps.py:portal) for a signed-in tenant
view that does nothing (the fixed cost), the device-list fragment and the full device page;
the bare app (bench/http_apps.py:bare) for the fragment and the page. Counting is switched on
(callgrind_control) only around the measured requests, after a warm-up. PostgreSQL's work is
not in these figures (another process): `make bench-http` reports its CPU per request.
Writes bench/out/instructions.md and .json. Needs valgrind (apt package `valgrind`).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys

from bench.devices import BIG, OUT, PASSWORD, ROOT, admin_url, generate, log, people

CASES = [("portal", "floor"), ("portal", "fragment"), ("portal", "page"), ("bare", "fragment"), ("bare", "page")]
SECRET = "bench-instructions-" + "s" * 32


def child(app_name: str, path: str, requests: int) -> None:
    """Runs under callgrind: sign in, warm up, count `requests` requests."""
    from bench.http_apps import bare, portal
    signed_in = portal()
    if path == "floor":
        from bench.devices import _add_floor_route
        _add_floor_route(signed_in)
    client = signed_in.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    r = client.post("/login", data={"email": "bench-owner@example.com", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303, f"bench sign-in failed: {r.status_code}"
    if app_name == "bare":
        cookie = client.get_cookie("portal_session").value
        client = bare().test_client()
        client.set_cookie("portal_session", cookie)
    url = f"/t/{BIG}/bench-floor/" if path == "floor" else f"/t/{BIG}/devices/"
    headers = {} if path == "page" else {"HX-Request": "true"}
    for _ in range(10):
        r = client.get(url, headers=headers)
        assert r.status_code == 200, f"{app_name} {path}: {r.status_code}"
    assert path == "floor" or b'<td class="name">' in r.data, f"{app_name} {path}: no device rows"
    gc.collect()  # every case starts its count from the same collector state
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
    for _ in range(requests):
        client.get(url, headers=headers)
    subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)


def measure(app_name: str, path: str, requests: int, env: dict) -> float:
    out = OUT / f"callgrind.{app_name}.{path}"
    run = subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                          sys.executable, "-m", "bench.instructions", "--child", app_name, path,
                          "--requests", str(requests)], cwd=ROOT, env=env, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or not found:
        raise SystemExit(f"{app_name} {path} failed:\n{run.stderr[-3000:]}")
    out.unlink(missing_ok=True)
    return int(found.group(1)) / requests


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="counted requests per case")
    parser.add_argument("--child", nargs=2, metavar=("APP", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child, args.requests)
        return 0
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind not found: apt-get install valgrind")
    admin = admin_url()
    generate(admin, False)
    world = people(admin)
    OUT.mkdir(parents=True, exist_ok=True)
    shell = OUT / "page-shell.html"
    if not shell.exists():
        raise SystemExit("bench/out/page-shell.html is missing: run `make bench-http` once (it captures the page's chrome)")
    env = {**os.environ, "BENCH_ADMIN_URL": admin, "BENCH_SECRET_KEY": SECRET, "BENCH_SLUG": BIG,
           "BENCH_TENANT_ID": str(world["tenant_id"]), "BENCH_PAGE_SHELL": str(shell), "PYTHONPATH": str(ROOT)}
    counts = {}
    for app_name, path in CASES:
        counts[f"{app_name} {path}"] = measure(app_name, path, args.requests, env)
        log(f"{app_name:6} {path:8} {counts[f'{app_name} {path}'] / 1e6:7.2f} M instructions per request")
    lines = [f"Instructions per request (callgrind, the app's process only, {args.requests} requests after a "
             "warm-up, Flask's test client):", "", "| Case | M instructions | bare/portal |", "|---|---:|---:|"]
    for case, count in counts.items():
        app_name, path = case.split()
        ratio = counts.get(f"bare {path}", 0) / count if app_name == "portal" and f"bare {path}" in counts else None
        lines.append(f"| {case} | {count / 1e6:.2f} | {f'{ratio:.2f}' if ratio else ''} |")
    text = "\n".join(lines) + "\n"
    (OUT / "instructions.md").write_text(text)
    (OUT / "instructions.json").write_text(json.dumps(counts, indent=2))
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
