"""API device list benchmark: GET /api/v1/devices at page 1,000 of the 100,000-device tenant
against the device page's own htmx fragment at the same depth (issue 15: within 1.5x).

    .venv/bin/python -m bench.api                 # or: make bench-api
    .venv/bin/python -m bench.api --tenants 10    # the small data set: the big tenant + 9 others

Reuses bench/devices.py's data set generator and signed-in portal, in its own database
(`portal_bench_api`, roles `portal_bench_api_*`) so it never touches `make bench`'s data:
on the embedded PostgreSQL under instance/pgbench, or on BENCH_DATABASE_URL. `--tenants`
shrinks the other tenants (the big one always has 100,000 devices over 50 sites). Both paths
are timed as server time (WSGI call to finished response) in the same process, interleaved:

- page: the signed-in owner's GET /t/bench-0000/devices/?after=<page 1,000> with HX-Request
  (session, membership, RLS context, keyset statement, template);
- api:  GET /api/v1/devices?cursor=<the same position> with a bearer token of a client holding
  devices:view (token lookup, RLS context, the same keyset statement, JSON).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

from bench import devices as dev


def _configure(tenants: int) -> None:
    dev.DATABASE, dev.OWNER, dev.APP_ROLE = "portal_bench_api", "portal_bench_api_owner", "portal_bench_api_app"
    dev.GENERATE = dev.GENERATE.replace(f"generate_series(0, {dev.TENANTS - 1})", f"generate_series(0, {tenants - 1})")
    dev.TENANTS = tenants


def _token(bench) -> str:
    from portal.api import services
    from portal.database.context import tenant_scope
    from portal.extensions import db
    from portal.tenancy import Permission, TenantContext
    from portal.tenancy.roles import Role
    from portal.tenants.models import Tenant
    app = bench.app
    with app.app_context(), tenant_scope(db.session, bench.world["tenant_id"], actor="bench:setup"):
        tenant = db.session.get(Tenant, bench.world["tenant_id"])
        ctx = TenantContext(tenant, None, Role("bench", "Bench", "", frozenset(Permission)))
        client, secret = services.create_client(ctx, services.ClientData("bench", ["devices:view"]))
        client_id = str(client.id)
        db.session.commit()
    response = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials",
                                                            "client_id": client_id, "client_secret": secret})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["access_token"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--tenants", type=int, default=dev.TENANTS, help="tenants in the data set (default 1,000)")
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args(argv)
    _configure(args.tenants)
    admin = dev.admin_url()
    dev.generate(admin, args.regenerate)
    world = dev.people(admin)
    dev.log(f"{world['tenants']:,} tenants, {world['devices']:,} devices; {dev.BIG} has {world['big']:,}.")
    bench = dev.Bench(admin, world, args.runs)
    bench.app.config["API_RATE_LIMIT"] = "100000000 per minute"  # measuring the list, not the limiter
    token = _token(bench)
    api = bench.app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    results = {}
    for label, page in (("page 1", 1), ("page 1,000", 1000)):
        cursor = bench.cursor_for_page("owner", {}, page) if page > 1 else ""
        page_url = f"/t/{dev.BIG}/devices/" + (f"?after={cursor}" if cursor else "")
        api_url = "/api/v1/devices" + (f"?cursor={cursor}" if cursor else "")
        first = api.get(api_url, headers=headers)
        assert first.status_code == 200 and len(first.get_json()["items"]) == 50, first.status_code
        for _ in range(20):  # warm both paths (prepared statements, caches)
            bench.portal_once("owner", page_url)
            api.get(api_url, headers=headers)
        page_ms, api_ms = [], []
        for _ in range(args.runs):
            page_ms.append(bench.portal_once("owner", page_url))
            response = api.get(api_url, headers=headers)
            assert response.status_code == 200, response.status_code
            api_ms.append(bench.timer.last_ms)
        row = {"page_p50": statistics.median(page_ms), "page_p95": dev.percentile(page_ms, 0.95),
               "api_p50": statistics.median(api_ms), "api_p95": dev.percentile(api_ms, 0.95), "runs": args.runs}
        row["ratio_p50"] = row["api_p50"] / row["page_p50"]
        row["ratio_p95"] = row["api_p95"] / row["page_p95"]
        results[label] = row
        dev.log(f"{label:<11} page fragment p50 {row['page_p50']:6.2f} p95 {row['page_p95']:6.2f} ms | "
                f"API p50 {row['api_p50']:6.2f} p95 {row['api_p95']:6.2f} ms | API/page x{row['ratio_p50']:.2f} "
                f"(p95 x{row['ratio_p95']:.2f})")
    info = dev.machine()
    dev.OUT.mkdir(parents=True, exist_ok=True)
    (dev.OUT / "api.json").write_text(json.dumps({"machine": info, "tenants": world["tenants"],
                                                  "devices": world["devices"], "big": world["big"],
                                                  "results": results}, indent=2, default=str))
    deep = results["page 1,000"]
    dev.log(f"Page 1,000: API/page p50 x{deep['ratio_p50']:.2f} (target <= 1.5). Wrote {dev.OUT / 'api.json'}.")
    return 0 if deep["ratio_p50"] <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
