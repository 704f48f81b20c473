"""Instruction budgets (`make check-budgets`, run by `.ci/run`): what the hot requests cost, counted
by valgrind's callgrind in the app's process, against the budgets committed in bench/budgets.toml.
A case costing more than its budget plus the tolerance (5%) fails with the figures.

    .venv/bin/python -m bench.budgets             # or: make check-budgets
    .venv/bin/python -m bench.budgets --update    # rewrites the budgets with today's counts

Instruction counts are repeatable to a fraction of a percent on a busy shared machine, where
wall-clock times move by 20%. The data set is small and built in seconds on its own database
(`portal_budgets` on the embedded server under instance/budgets, or on BENCH_DATABASE_URL): one
tenant, 5 sites, 500 devices, an owner, an API client and a gateway. The app is the portal with
production settings (as `make bench-http` serves it), driven through Flask's test client in one
process under callgrind: signed in once (in the parent: argon2 under valgrind would take a minute),
each case warmed up, then counting switched on for its requests only. PostgreSQL's own work is
another process and not counted.

Updating a budget is a deliberate commit: run with --update, and say in the commit and in the
case's `why` what made it dearer (or cheaper).
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
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGETS = Path(os.environ.get("BUDGETS_FILE") or ROOT / "bench" / "budgets.toml")  # another file: to try the check
DATABASE, OWNER, APP_ROLE = "portal_budgets", "portal_budgets_owner", "portal_budgets_app"
SLUG = "budget"
PASSWORD = "budget-password-not-secret"
SECRET = "budgets-" + "s" * 32
# The keyring's master key for this throwaway data set (production mode requires one).
MASTER_KEY = "YnVkZ2V0cy1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmc="
SITES, DEVICES, BATCH = 5, 500, 100
TOLERANCE = 0.05

# Each case: method, path, headers, body (filled in by the child from the prepared world).
CASES = ["floor", "device fragment", "device page", "dashboard", "api devices", "heartbeat batch"]

GENERATE = f"""
INSERT INTO sites (tenant_id, name, timezone, address)
SELECT %(t)s, 'Site ' || s, 'Europe/Berlin', s || ' Budget Street' FROM generate_series(1, {SITES}) s;
INSERT INTO devices (tenant_id, site_id, name, type, serial_number, status, firmware_version, last_seen_at)
SELECT %(t)s, (SELECT id FROM sites WHERE tenant_id = %(t)s AND name = 'Site ' || (1 + i %% {SITES})),
       'Device ' || lpad(i::text, 4, '0'),
       (ARRAY['sensor','controller','gateway','camera','meter']::device_type[])[1 + i %% 5],
       'SN-' || lpad(i::text, 6, '0'),
       (ARRAY['online','online','offline','maintenance','error']::device_status[])[1 + i %% 5],
       '1.' || (i %% 7) || '.0', now() - (i || ' minutes')::interval
FROM generate_series(1, {DEVICES}) i;
"""


def log(message: str) -> None:
    print(f"[budgets] {message}", flush=True)


def _urls(admin: str) -> dict:
    from portal.database.provision import url_for_role
    return {"DATABASE_URL": url_for_role(admin, APP_ROLE, DATABASE),
            "MIGRATION_DATABASE_URL": url_for_role(admin, OWNER, DATABASE)}


def make_app(admin: str):
    """The portal as deployed (bench/http_apps.py:portal), on the budgets database."""
    from bench.devices import _add_floor_route
    from portal import create_app
    app = create_app({"PORTAL_ENV": "production", "SECRET_KEY": SECRET, "PORTAL_MASTER_KEYS": MASTER_KEY,
                      "LOG_LEVEL": "WARNING",
                      "BASE_URL": "http://127.0.0.1", "SESSION_COOKIE_SECURE": False,
                      # Counting the requests, not the limiter's refusals.
                      "API_RATE_LIMIT": "100000000 per minute", **_urls(admin)})
    _add_floor_route(app)
    return app


def prepare(admin: str) -> dict:
    """A fresh database with the small data set; the signed-in cookie, an API token and a gateway
    secret for the child."""
    import psycopg
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from bench.devices import libpq
    from portal.accounts.services import create_user
    from portal.agents.credentials import hash_secret, new_secret
    from portal.agents.models import AgentCredential
    from portal.api import services as api_services
    from portal.database.context import tenant_scope
    from portal.database.provision import provision
    from portal.extensions import db
    from portal.tenancy import Permission, TenantContext
    from portal.tenancy.models import Membership, MembershipRole
    from portal.tenancy.roles import Role
    from portal.tenants.models import Tenant

    provision(admin, DATABASE, OWNER, APP_ROLE, fresh=True)
    app = make_app(admin)
    with app.app_context():
        upgrade()
        tenant = Tenant(name="Budget Tenant", slug=SLUG, plan="enterprise", max_devices=100_000, max_sites=100,
                        max_integrations=10, max_api_clients=10)
        db.session.add(tenant)
        db.session.flush()
        tenant_id = tenant.id
        user = create_user("budget-owner@example.com", "Budget Owner", PASSWORD,
                           email_verified_at=sa.func.now())
        with tenant_scope(db.session, tenant_id, actor="bench:setup"):
            db.session.add(Membership(tenant_id=tenant_id, user_id=user.id, role=MembershipRole.OWNER))
            db.session.flush()
        db.session.commit()
    with psycopg.connect(libpq(admin, DATABASE), autocommit=True) as conn:
        for statement in GENERATE.split(";\n")[:2]:  # one statement per execute (parameters)
            conn.execute(statement, {"t": tenant_id})
        conn.execute("VACUUM ANALYZE")
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="bench:setup"):
        devices = [str(i) for i in db.session.scalars(sa.text(
            "SELECT id FROM devices WHERE tenant_id = :t ORDER BY serial_number LIMIT :n"),
            {"t": tenant_id, "n": BATCH})]
        gateway = new_secret()
        db.session.add(AgentCredential(tenant_id=tenant_id, device_id=devices[0], secret_hash=hash_secret(gateway),
                                       gateway=True))
        tenant = db.session.get(Tenant, tenant_id)
        ctx = TenantContext(tenant, None, Role("budget", "Budget", "", frozenset(Permission)))
        client, secret = api_services.create_client(ctx, api_services.ClientData("budget", ["devices:view"]))
        client_id = str(client.id)
        db.session.commit()
    web = app.test_client()
    answer = web.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id,
                                            "client_secret": secret})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    token = answer.get_json()["access_token"]
    page = web.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    answer = web.post("/login", data={"email": "budget-owner@example.com", "password": PASSWORD,
                                      "csrf_token": csrf})
    assert answer.status_code == 303, f"sign-in failed: {answer.status_code}"
    cookie = web.get_cookie("portal_session").value
    with app.app_context():
        db.engine.dispose()
    return {"cookie": cookie, "token": token, "gateway": gateway, "devices": devices}


def requests_for(world: dict) -> dict:
    batch = json.dumps({"devices": [{"device_id": d, "status": "online", "metrics": {"t": 21.5}}
                                    for d in world["devices"]]})
    htmx = {"HX-Request": "true"}
    return {
        "floor": ("GET", f"/t/{SLUG}/bench-floor/", htmx, None),
        "device fragment": ("GET", f"/t/{SLUG}/devices/", htmx, None),
        "device page": ("GET", f"/t/{SLUG}/devices/", {}, None),
        "dashboard": ("GET", f"/t/{SLUG}/", {}, None),
        "api devices": ("GET", "/api/v1/devices", {"Authorization": f"Bearer {world['token']}"}, None),
        "heartbeat batch": ("POST", "/api/v1/agent/heartbeat", {"Authorization": f"Bearer {world['gateway']}",
                                                               "Content-Type": "application/json"}, batch),
    }


def child(world_file: str, cases: list[str], requests: int, results_file: str) -> None:
    """Runs under callgrind: each case warmed up, then its `requests` counted on their own."""
    admin = os.environ["BUDGETS_ADMIN_URL"]
    world = json.loads(Path(world_file).read_text())
    app = make_app(admin)
    client = app.test_client()
    client.set_cookie("portal_session", world["cookie"])
    table = requests_for(world)
    pid = str(os.getpid())

    def control(*args) -> str:
        return subprocess.run(["callgrind_control", *args, pid], check=True, capture_output=True, text=True).stdout
    counts = {}
    for case in cases:
        method, url, headers, body = table[case]

        def once():
            r = client.open(url, method=method, headers=headers, data=body)
            assert r.status_code == 200, f"{case}: {r.status_code} {r.get_data(as_text=True)[:300]}"
        for _ in range(5):  # caches, prepared statements, lazy imports
            once()
        gc.collect()  # every case starts from the same collector state
        control("-i", "on")
        control("-z")  # from here: this case's requests (and the constant cost of these two calls)
        for _ in range(requests):
            once()
        counts[case] = _totals(control("-e", "Ir")) / requests
        control("-i", "off")
    Path(results_file).write_text(json.dumps(counts))


def _totals(answer: str) -> int:
    """Instructions counted since the last zeroing, every thread ("Th 1  68,718,623" lines)."""
    found = re.findall(r"^\s*Th\s+\d+\s+([\d,]+)", answer, re.M)
    assert found, f"no counts in callgrind_control's answer: {answer!r}"
    return sum(int(n.replace(",", "")) for n in found)


def measure(admin: str, world: dict, cases: list[str], requests: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        world_file, results = Path(tmp) / "world.json", Path(tmp) / "results.json"
        world_file.write_text(json.dumps(world))
        env = {**os.environ, "BUDGETS_ADMIN_URL": admin, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
        run = subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                              f"--callgrind-out-file={tmp}/callgrind.out", sys.executable, "-m", "bench.budgets",
                              "--child", str(world_file), str(results), "--requests", str(requests),
                              "--cases", ",".join(cases)], cwd=ROOT, env=env, capture_output=True, text=True)
        if run.returncode != 0 or not results.exists():
            raise SystemExit(f"the counted run failed:\n{run.stderr[-3000:]}")
        return json.loads(results.read_text())


def load_budgets() -> dict:
    return tomllib.loads(BUDGETS.read_text())["cases"]


def update_budgets(counts: dict) -> None:
    text = BUDGETS.read_text()
    for case, count in counts.items():
        pattern = re.compile(rf'(\[cases\."{re.escape(case)}"\]\ninstructions = )[\d_]+')
        if not pattern.search(text):
            raise SystemExit(f'bench/budgets.toml has no [cases."{case}"]: add it by hand with its why')
        text = pattern.sub(lambda m: m.group(1) + f"{round(count, -3):_.0f}", text)
    BUDGETS.write_text(text)


def admin_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    from portal.database import embedded
    return embedded.admin_url(embedded.start(ROOT / "instance" / "budgets"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10, help="counted requests per case")
    parser.add_argument("--update", action="store_true", help="write today's counts into bench/budgets.toml")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--child", nargs=2, metavar=("WORLD", "RESULTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    if args.child:
        child(args.child[0], cases, args.requests, args.child[1])
        return 0
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind not found: apt-get install valgrind (make check-budgets installs it as root)")
    began = time.perf_counter()
    admin = admin_url()
    world = prepare(admin)
    log(f"data set ready in {time.perf_counter() - began:.0f} s; counting {args.requests} requests per case "
        "under callgrind…")
    counts = measure(admin, world, cases, args.requests)
    budgets = load_budgets()
    failed = []
    print(f"\n{'case':18} {'M instructions':>15} {'budget':>9} {'change':>8}")
    for case in cases:
        count, budget = counts[case], budgets.get(case, {}).get("instructions")
        change = f"{count / budget - 1:+8.1%}" if budget else "     new"
        print(f"{case:18} {count / 1e6:15.2f} {budget / 1e6 if budget else float('nan'):9.2f} {change}")
        if budget and count > budget * (1 + TOLERANCE) and not args.update:
            failed.append(f"{case}: {count:,.0f} instructions per request, budget {budget:,} "
                          f"(+{count / budget - 1:.1%}, tolerance {TOLERANCE:.0%})")
    print(f"\n{time.perf_counter() - began:.0f} s in all")
    if args.update:
        update_budgets(counts)
        log("bench/budgets.toml updated: commit it, saying why each changed budget changed.")
        return 0
    if failed:
        print("\nOver budget (find the cause, or raise the budget in a commit that says why: "
              "`python -m bench.budgets --update`):\n  " + "\n  ".join(failed))
        return 1
    log("every case within its budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
