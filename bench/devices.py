"""Device list benchmark: the portal against the same SQL run directly, at a million devices.

    .venv/bin/python -m bench.devices            # or: make bench
    .venv/bin/python -m bench.devices --runs 500 --regenerate

Generates (once; kept for later runs) 1,000 tenants and about 1,000,000 devices, one tenant
with 100,000 devices over 50 sites, in a database `portal_bench` provisioned like the real
one: on the embedded PostgreSQL under instance/pgbench, or on BENCH_DATABASE_URL (a superuser
URL of another server). Then, for each scenario, it measures side by side:

- portal: GET of the device-list fragment (HX-Request) through the Flask test client, signed
  in: routing, session, tenant and membership loading, RLS context, query, template;
- direct: the same SQL (compiled from the portal's own statement) run with psycopg as the
  serving role inside a transaction that sets the tenant, rendered with the same template;
- fixed cost: a signed-in tenant view that does nothing (/t/<slug>/bench-floor/, bench only),
  so portal minus fixed cost is the list's own work. Once, for reference: bare Flask and the
  portal's signed-out no-op route.

It reports p50/p95 in milliseconds, the ratio, the SQL statements per portal request
(SQLAlchemy before_cursor_execute) and EXPLAIN ANALYZE of each query, and writes
bench/out/results.json and bench/out/report.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import event
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DATABASE, OWNER, APP_ROLE = "portal_bench", "portal_bench_owner", "portal_bench_app"
BIG = "bench-0000"
PASSWORD = "bench-password-not-secret"
TENANTS, BIG_DEVICES, BIG_SITES, SMALL_DEVICES, SMALL_SITES = 1000, 100_000, 50, 901, 2
MEMBER_SITES = 5

WORDS = ["HVAC Controller", "Lobby Camera", "Network Gateway", "Temperature Sensor", "Energy Meter",
         "Asset Beacon", "Edge Router", "Door Actuator", "Rack Server", "Workstation", "Dock Camera",
         "Humidity Sensor"]


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


# --- The database --------------------------------------------------------------------------

def admin_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    from portal.database import embedded
    return embedded.admin_url(embedded.start(ROOT / "instance" / "pgbench"))


def libpq(url: str, database: str | None = None) -> str:
    u = make_url(url)
    if database:
        u = u.set(database=database)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def make_portal(admin: str):
    from portal import create_app
    from portal.database.provision import url_for_role
    config = {"PORTAL_ENV": "testing", "SECRET_KEY": "bench-" + "x" * 32, "LOG_LEVEL": "WARNING",
              "DATABASE_URL": url_for_role(admin, APP_ROLE, DATABASE),
              "MIGRATION_DATABASE_URL": url_for_role(admin, OWNER, DATABASE), "SERVER_NAME": None}
    app = create_app(config)
    _add_floor_route(app)
    return app


def _add_floor_route(app) -> None:
    """/t/<slug>/bench-floor/: a tenant view that does nothing, guarded like the device list.
    Its time is the fixed cost of any signed-in tenant request (cookie, session record, user,
    tenant, membership, RLS context, hooks, commit), which the direct path does not pay."""
    from portal.tenancy import requires, tenant_blueprint
    from portal.tenancy.permissions import Permission
    bp = tenant_blueprint("bench_floor", __name__, "/bench-floor")

    @bp.get("/")
    @requires(Permission.DEVICES_VIEW)
    def floor():
        return ""
    app.register_blueprint(bp)
    # Not signed in, no database: the portal's own hooks and extensions around a view.
    app.add_url_rule("/bench-plain", "bench_plain", lambda: "")


GENERATE = f"""
SET synchronous_commit = off;
SET maintenance_work_mem = '512MB';
INSERT INTO tenants (name, slug, type, max_users)
SELECT 'Bench Tenant ' || lpad(t::text, 4, '0'), 'bench-' || lpad(t::text, 4, '0'), 'standard', 100
FROM generate_series(0, {TENANTS - 1}) t;

INSERT INTO sites (tenant_id, name, timezone, address)
SELECT tn.id, 'Site ' || lpad(s::text, 2, '0') || ' ' || tn.slug, 'Europe/Berlin', s || ' Bench Street'
FROM tenants tn
CROSS JOIN LATERAL generate_series(1, CASE WHEN tn.slug = '{BIG}' THEN {BIG_SITES} ELSE {SMALL_SITES} END) s
WHERE tn.slug LIKE 'bench-%';

CREATE TEMP TABLE bench_plan AS
SELECT tn.id AS tenant_id, substr(tn.slug, 7)::int AS n,
       CASE WHEN tn.slug = '{BIG}' THEN {BIG_DEVICES} ELSE {SMALL_DEVICES} END AS devices,
       array_agg(s.id ORDER BY s.name) AS sites
FROM tenants tn JOIN sites s ON s.tenant_id = tn.id
WHERE tn.slug LIKE 'bench-%' GROUP BY tn.id, tn.slug;

INSERT INTO devices (tenant_id, site_id, name, type, serial_number, status, firmware_version, last_seen_at, metadata)
SELECT p.tenant_id,
       p.sites[1 + (h % array_length(p.sites, 1))],
       (ARRAY{WORDS!r})[1 + (h / 7) % {len(WORDS)}] || ' B' || lpad(((h / 91) % 100)::text, 2, '0')
           || '-' || lpad(i::text, 6, '0'),
       (ARRAY['sensor','controller','gateway','camera','actuator','meter','beacon','router','server',
              'workstation']::device_type[])[1 + (h / 13) % 10],
       'SN' || lpad(p.n::text, 4, '0') || '-' || lpad(i::text, 6, '0'),
       (CASE WHEN h % 100 < 60 THEN 'online' WHEN h % 100 < 80 THEN 'offline'
             WHEN h % 100 < 90 THEN 'maintenance' WHEN h % 100 < 95 THEN 'error'
             ELSE 'decommissioned' END)::device_status,
       (1 + h % 5) || '.' || (h / 5 % 10) || '.' || (h / 50 % 20),
       CASE WHEN h % 100 >= 97 THEN NULL ELSE now() - ((h % 2592000) || ' seconds')::interval END,
       CASE WHEN h % 10 = 0 THEN jsonb_build_object('specs', jsonb_build_object('ports', h % 48)) ELSE '{{}}' END
FROM bench_plan p
CROSS JOIN LATERAL generate_series(1, p.devices) i
CROSS JOIN LATERAL (SELECT abs(hashtext(p.n || ':' || i)) AS h) r;
"""


def generate(admin: str, regenerate: bool) -> None:
    from flask_migrate import upgrade
    from portal.database.provision import provision
    target = libpq(admin, DATABASE)
    if not regenerate:
        try:
            with psycopg.connect(target) as conn:
                n = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
            if n >= TENANTS - 1 + BIG_DEVICES:
                log(f"Reusing the data set in {DATABASE}: {n:,} devices (--regenerate to rebuild).")
                with make_portal(admin).app_context():
                    upgrade()  # later migrations (the data set may predate them)
                return
        except psycopg.Error:
            pass
    log(f"Provisioning {DATABASE} (fresh)…")
    provision(admin, DATABASE, OWNER, APP_ROLE, fresh=True)
    app = make_portal(admin)
    with app.app_context():
        upgrade()
    started = time.perf_counter()
    log("Generating 1,000 tenants, their sites and about 1,000,000 devices (generate_series)…")
    with psycopg.connect(target, autocommit=True) as conn:
        with conn.transaction():
            conn.execute(GENERATE)
        log(f"  rows in {time.perf_counter() - started:.0f} s; VACUUM ANALYZE…")
        conn.execute("VACUUM ANALYZE")
    log(f"Data set ready in {time.perf_counter() - started:.0f} s.")


def people(admin: str) -> dict:
    """An owner and a member (assigned to 5 of the 50 sites) of the big tenant."""
    from portal.accounts.passwords import hash_password
    with psycopg.connect(libpq(admin, DATABASE), autocommit=True) as conn:
        tenant_id = conn.execute("SELECT id FROM tenants WHERE slug = %s", (BIG,)).fetchone()[0]
        found = {}
        for role in ("owner", "member"):
            email = f"bench-{role}@example.com"
            row = conn.execute("SELECT id FROM users WHERE email = %s", (email,)).fetchone()
            if row is None:
                row = conn.execute(
                    "INSERT INTO users (email, name, password_hash, email_verified_at) VALUES (%s, %s, %s, now()) "
                    "RETURNING id", (email, f"Bench {role}", hash_password(PASSWORD))).fetchone()
                conn.execute("INSERT INTO user_tenant_associations (tenant_id, user_id, role) VALUES (%s, %s, %s)",
                             (tenant_id, row[0], role))
            found[role] = {"id": row[0], "email": email}
        if not conn.execute("SELECT 1 FROM user_site_assignments WHERE user_id = %s",
                            (found["member"]["id"],)).fetchone():
            conn.execute("""INSERT INTO user_site_assignments (tenant_id, site_id, user_id)
                            SELECT tenant_id, id, %s FROM sites WHERE tenant_id = %s ORDER BY name LIMIT %s""",
                         (found["member"]["id"], tenant_id, MEMBER_SITES))
        counts = conn.execute("SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM devices), "
                              "(SELECT count(*) FROM devices WHERE tenant_id = %s)", (tenant_id,)).fetchone()
    return {"tenant_id": tenant_id, "users": found, "tenants": counts[0], "devices": counts[1], "big": counts[2]}


# --- Measuring -----------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Bench:
    def __init__(self, admin: str, world: dict, runs: int):
        from portal.database.provision import url_for_role
        self.app = make_portal(admin)
        self.world, self.runs = world, runs
        self.slug = BIG
        self.app_url = libpq(url_for_role(admin, APP_ROLE, DATABASE))
        self.clients = {}
        for role, user in world["users"].items():
            client = self.app.test_client()
            page = client.get("/login").get_data(as_text=True)
            import re
            token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
            r = client.post("/login", data={"email": user["email"], "password": PASSWORD, "csrf_token": token})
            assert r.status_code == 303, f"bench sign-in failed: {r.status_code}"
            self.clients[role] = client
        with self.app.app_context():
            self.engine = __import__("portal.extensions", fromlist=["db"]).db.engine
        self.timer = ServerTimer(self.app.wsgi_app)
        self.app.wsgi_app = self.timer
        self.direct = psycopg.connect(self.app_url, row_factory=namedtuple_row)
        # What portal_enter_tenant puts in app.site_ids for each role (the sites of a member who
        # does not see every site), for the direct path's context.
        with self.app.app_context():
            with psycopg.connect(libpq(admin, DATABASE)) as conn:
                self.site_ids = {role: "" if self.context(role).sees_all else conn.execute(
                    "SELECT ARRAY(SELECT site_id FROM user_site_assignments WHERE tenant_id = %s AND user_id = %s)::text",
                    (self.world["tenant_id"], user["id"])).fetchone()[0] for role, user in world["users"].items()}

    def enter_directly(self, role: str) -> None:
        """The direct path's context, like the portal's: tenant, user, the role's permissions (the
        permission and site policies read them) and custom plans for the transaction, in one statement."""
        permissions = ",".join(sorted(p.value for p in self.context(role).permissions))
        self.direct.execute("SELECT set_config('app.tenant_id', %s, true) AS t, set_config('app.user_id', %s, true) AS u, "
                            "set_config('app.permissions', %s, true) AS r, set_config('app.site_ids', %s, true) AS s, "
                            "set_config('plan_cache_mode', 'force_custom_plan', true) AS p",
                            (str(self.world["tenant_id"]), str(self.world["users"][role]["id"]), permissions,
                             self.site_ids[role]))

    def context(self, role: str):
        """The TenantContext the portal builds for this role (from the known ids, no query)."""
        from types import SimpleNamespace
        from portal.tenancy import TenantContext, roles
        from portal.tenancy.models import MembershipRole
        tenant = SimpleNamespace(id=self.world["tenant_id"], slug=self.slug, name=self.slug)
        member = SimpleNamespace(user_id=self.world["users"][role]["id"])
        return TenantContext(tenant, member, roles.system_role(MembershipRole(role)))

    def state_and_statement(self, role: str, args: dict):
        """The portal's own statement for these URL arguments, compiled for psycopg."""
        from portal.devices.queries import ListState, page_statement
        state = ListState.from_args(args)
        statement, values = page_statement(self.context(role), state)
        compiled = statement.compile(dialect=self.engine.dialect)
        return state, str(compiled), compiled.construct_params(values)

    def cursor_for_page(self, role: str, args: dict, page: int) -> str:
        """The `after` of page `page`, found by walking the keyset pages from the first."""
        from portal.devices.queries import page_from_rows
        after = ""
        for _ in range(page - 1):
            state, sql, params = self.state_and_statement(role, dict(args, after=after))
            with self.direct.transaction():
                self.enter_directly(role)
                after = page_from_rows(self.direct.execute(sql, params).fetchall(), state).next_cursor
            assert after, f"no page {page} for {args}"
        return after

    def portal_once(self, role: str, url: str) -> float:
        """Server time of one request: from the WSGI call to the finished response (the test
        client's own work building the request and reading the response is left out)."""
        response = self.clients[role].get(url, headers={"HX-Request": "true"})
        assert response.status_code == 200, response.status_code
        return self.timer.last_ms

    def direct_once(self, role: str, compiled: tuple, url: str) -> float:
        """Like the portal, in one transaction: set the tenant (and custom plans), run the
        statement, render the fragment. The statement is compiled once, outside the timing."""
        from flask import g, render_template
        from portal.devices.queries import page_from_rows
        state, sql, params = compiled
        started = time.perf_counter()
        with self.direct.transaction():
            self.enter_directly(role)
            rows = self.direct.execute(sql, params).fetchall()
        page = page_from_rows(rows, state)
        with self.app.test_request_context(url):
            g.tenant_context = self.context(role)
            render_template("devices/_device_rows.html", page=page)
        return (time.perf_counter() - started) * 1000

    def statements(self, role: str, url: str) -> list[str]:
        seen: list[str] = []

        def record(conn, cursor, statement, *args):
            seen.append(" ".join(statement.split())[:160])
        event.listen(self.engine, "before_cursor_execute", record)
        try:
            self.portal_once(role, url)
        finally:
            event.remove(self.engine, "before_cursor_execute", record)
        return seen

    def explain(self, role: str, args: dict) -> str:
        _, sql, params = self.state_and_statement(role, args)
        with self.direct.transaction():
            self.enter_directly(role)
            cur = self.direct.cursor(row_factory=psycopg.rows.tuple_row)
            plan = cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params).fetchall()
        return "\n".join(r[0] for r in plan)

    def breakdown(self, role: str, url: str, runs: int = 300) -> dict[str, float]:
        """Median time of each phase of a portal request (functions wrapped for the measurement)."""
        import functools
        from sqlalchemy.orm import Session
        from portal.devices import views
        phases: dict[str, list[float]] = {}

        def timed(label, func):
            @functools.wraps(func)
            def wrapper(*a, **k):
                started = time.perf_counter()
                try:
                    return func(*a, **k)
                finally:
                    phases.setdefault(label, []).append((time.perf_counter() - started) * 1000)
            return wrapper

        loader = self.app.login_manager._user_callback
        patches = [(views.queries, "device_page", "device page query (1 statement)"),
                   (views, "render_template", "template"), (Session, "commit", "commit")]
        originals = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patches]
        try:
            self.app.login_manager._user_callback = timed(
                "session, user, tenant, membership, RLS context (1 statement)", loader)
            for obj, attr, label in patches:
                setattr(obj, attr, timed(label, getattr(obj, attr)))
            server = [self.portal_once(role, url) for _ in range(runs)]
        finally:
            self.app.login_manager._user_callback = loader
            for obj, attr, func in originals:
                setattr(obj, attr, func)
        result = {label: statistics.median(values) for label, values in phases.items()}
        result["everything else (Flask, CSRF, limiter, hooks)"] = statistics.median(server) - sum(result.values())
        result["server time"] = statistics.median(server)
        return result

    def floors(self, runs: int) -> dict[str, float]:
        """Median server time of requests that do no work, from bare Flask to a signed-in
        tenant view: what any request costs before the device list does anything."""
        import flask
        bare = flask.Flask("bare")
        bare.add_url_rule("/", "bare", lambda: "")
        timer = ServerTimer(bare.wsgi_app)
        bare.wsgi_app = timer
        bare_client, client = bare.test_client(), self.clients["owner"]
        paths = {"Flask alone (no extension, no hook)": lambda: (bare_client.get("/"), timer.last_ms)[1],
                 "the portal, signed out, no database (hooks, extensions, cookie)":
                     lambda: (client.get("/bench-plain"), self.timer.last_ms)[1],
                 "the portal, signed-in tenant view that does nothing (+ session, user, tenant, "
                 "membership, RLS context, commit)": lambda: self.portal_once("owner", f"/t/{self.slug}/bench-floor/")}
        times: dict[str, list[float]] = {label: [] for label in paths}
        for i in range(runs + 20):
            for label, once in paths.items():
                elapsed = once()
                if i >= 20:
                    times[label].append(elapsed)
        return {label: statistics.median(values) for label, values in times.items()}

    def measure(self, name: str, role: str, args: dict) -> dict:
        from urllib.parse import urlencode
        url = f"/t/{self.slug}/devices/" + ("?" + urlencode(args) if args else "")
        compiled = self.state_and_statement(role, args)
        for _ in range(20):  # warm both paths (connections, prepared statements, templates)
            self.portal_once(role, url)
            self.direct_once(role, compiled, url)
        floor_url = f"/t/{self.slug}/bench-floor/"
        portal, direct, floor = [], [], []
        for _ in range(self.runs):  # interleaved, so drift hits all three alike
            portal.append(self.portal_once(role, url))
            direct.append(self.direct_once(role, compiled, url))
            floor.append(self.portal_once(role, floor_url))
        statements = self.statements(role, url)
        result = {
            "scenario": name, "role": role, "url": url,
            "portal_p50": statistics.median(portal), "portal_p95": percentile(portal, 0.95),
            "direct_p50": statistics.median(direct), "direct_p95": percentile(direct, 0.95),
            "floor_p50": statistics.median(floor),
            "statements": len(statements), "statement_list": statements, "explain": self.explain(role, args),
        }
        result["ratio_p50"] = result["portal_p50"] / result["direct_p50"]
        result["ratio_p95"] = result["portal_p95"] / result["direct_p95"]
        # The list's own work in the portal (query, statement, rows, template, response)
        # against the direct path, which still pays its own transaction and request context.
        result["work_ratio_p50"] = (result["portal_p50"] - result["floor_p50"]) / result["direct_p50"]
        log(f"{name:<34} portal p50 {result['portal_p50']:6.2f} p95 {result['portal_p95']:6.2f} | direct p50 "
            f"{result['direct_p50']:6.2f} p95 {result['direct_p95']:6.2f} ms | x{result['ratio_p50']:.2f} "
            f"(p95 x{result['ratio_p95']:.2f}) | floor {result['floor_p50']:5.2f}, list work "
            f"x{result['work_ratio_p50']:.2f} | {result['statements']} statements")
        return result


class ServerTimer:
    """WSGI middleware measuring the app's time for each request, body included."""

    def __init__(self, wsgi_app):
        self.wsgi_app, self.last_ms = wsgi_app, 0.0

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        chunks = self.wsgi_app(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()  # teardown (session removal) runs here: it is server time too
        self.last_ms = (time.perf_counter() - started) * 1000
        return [body]


def scenarios(bench: Bench) -> list[tuple[str, str, dict]]:
    deep = {"after": bench.cursor_for_page("owner", {}, 1000)}
    seen_deep = {"sort": "last_seen", "after": bench.cursor_for_page("owner", {"sort": "last_seen"}, 1000)}
    member_deep = {"after": bench.cursor_for_page("member", {}, 100)}
    return [
        ("page 1 (name)", "owner", {}),
        ("page 1,000 (name, keyset)", "owner", deep),
        ("page 1,000 (last seen, keyset)", "owner", seen_deep),
        ("filter status=error", "owner", {"status": "error"}),
        ("filter site + type", "owner", {"site": "", "type": "camera"}),
        ("search 'lobby' (8% match)", "owner", {"q": "lobby"}),
        ("search 'lobby camera b07' (rare)", "owner", {"q": "lobby camera b07"}),
        ("search serial 'sn0000-0123'", "owner", {"q": "sn0000-0123"}),
        ("search 'zzz' (no match)", "owner", {"q": "zzz"}),
        ("search + filter + sort", "owner", {"q": "edge", "status": "online", "sort": "last_seen"}),
        ("member (5 of 50 sites) page 1", "member", {}),
        ("member page 100 (keyset)", "member", member_deep),
        ("member search 'dock'", "member", {"q": "dock"}),
    ]


def machine() -> dict:
    with psycopg.connect(libpq(admin_url())) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpus": os.cpu_count(), "cpu": cpu,
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "python": platform.python_version(), "postgresql": version,
            "database": "BENCH_DATABASE_URL" if os.environ.get("BENCH_DATABASE_URL") else "embedded (pgserver)"}


def report(results: list[dict], world: dict, info: dict) -> str:
    lines = [f"Machine: {info['cpus']} cores ({info['cpu']}), Python {info['python']}, PostgreSQL "
             f"{info['postgresql']} ({info['database']}), {info['date']}, load average at the end "
             f"{info['load']}.",
             f"Data: {world['tenants']:,} tenants, {world['devices']:,} devices; the measured tenant has "
             f"{world['big']:,} devices over {BIG_SITES} sites. {results[0]['runs']} requests per path and scenario.",
             "", "| Scenario | Portal p50 | Portal p95 | Direct p50 | Direct p95 | Portal/direct (p50, p95) "
             "| Fixed cost p50 | List work / direct (p50) | SQL statements |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['scenario']} ({r['role']}) | {r['portal_p50']:.2f} ms | {r['portal_p95']:.2f} ms | "
                     f"{r['direct_p50']:.2f} ms | {r['direct_p95']:.2f} ms | {r['ratio_p50']:.2f}, {r['ratio_p95']:.2f} "
                     f"| {r['floor_p50']:.2f} ms | {r['work_ratio_p50']:.2f} | {r['statements']} |")
    lines += ["", "Where a portal request's time goes (page 1, owner, medians of each phase):", "",
              "| Phase | ms |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in results[0].get("breakdown", {}).items()]
    lines += ["", "What a request costs before it does any work (medians):", "", "| Request | ms |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in results[0].get("floors", {}).items()]
    lines += ["", "Statements of one portal request (page 1):", ""]
    lines += [f"{i}. `{s}`" for i, s in enumerate(results[0]["statement_list"], 1)]
    for r in results:
        lines += ["", f"EXPLAIN ANALYZE, {r['scenario']} ({r['role']}):", "", "```", r["explain"], "```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="measured requests per path and scenario")
    parser.add_argument("--regenerate", action="store_true", help="rebuild the data set")
    parser.add_argument("--scenarios", type=int, default=0, help="only the first N scenarios (2: pages 1 and 1,000)")
    args = parser.parse_args(argv)
    admin = admin_url()
    generate(admin, args.regenerate)
    world = people(admin)
    log(f"{world['tenants']:,} tenants, {world['devices']:,} devices; {BIG} has {world['big']:,}.")
    bench = Bench(admin, world, args.runs)
    results = []
    for name, role, params in scenarios(bench)[:args.scenarios or None]:
        if "site" in params and not params["site"]:
            with psycopg.connect(libpq(admin, DATABASE)) as conn:
                params = dict(params, site=str(conn.execute(
                    "SELECT id FROM sites WHERE tenant_id = %s ORDER BY name OFFSET 7 LIMIT 1",
                    (world["tenant_id"],)).fetchone()[0]))
        result = bench.measure(name, role, params)
        result["runs"] = args.runs
        results.append(result)
    parts = bench.breakdown("owner", results[0]["url"], args.runs)
    log("Where a portal request's time goes (page 1, medians): " +
        "; ".join(f"{k} {v:.2f} ms" for k, v in parts.items()))
    results[0]["breakdown"] = parts
    fixed = bench.floors(args.runs)
    log("Fixed cost of a request (medians): " + "; ".join(f"{k} {v:.2f} ms" for k, v in fixed.items()))
    results[0]["floors"] = fixed
    info = machine()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"machine": info, "world": {k: str(v) if k == "tenant_id" else v
                                                                             for k, v in world.items() if k != "users"},
                                                  "results": results}, indent=2, default=str))
    (OUT / "report.md").write_text(report(results, world, info))
    log(f"Wrote {OUT / 'report.md'} and results.json.")
    worst = max(r["portal_p95"] for r in results)
    log(f"Worst portal p95: {worst:.2f} ms (target < 50 ms); worst p50 ratio "
        f"{max(r['ratio_p50'] for r in results):.2f} (target <= 1.3); worst list-work ratio "
        f"{max(r['work_ratio_p50'] for r in results):.2f}; max statements "
        f"{max(r['statements'] for r in results)} (target <= 4).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
