"""Analytics events benchmark (not part of `make test`): the dashboard's and the analytics
page's queries on a tenant with many events, partition pruning, and the cost of recording.

    .venv/bin/python -m bench.analytics                 # or: make bench-analytics
    .venv/bin/python -m bench.analytics --big 500000 --tenants 100 --each 5000

In a database `portal_bench_analytics` on the embedded PostgreSQL under instance/pgbench (or on
BENCH_DATABASE_URL, a superuser URL), provisioned and migrated like the real one. Generates once
(kept between runs; --regenerate to redo) one big tenant with --big events over the last 90 days
and --tenants others with --each events, spread over six event types, inserted as the owner with
generate_series. Then, as the serving role inside the big tenant (RLS on), median of --runs:

- per_day: one type per day over 30 days (the analytics page), and the same over 90 days;
- per_day_by_type: every type per day over 30 days (the dashboard's events chart, from the rollup),
  and the same aggregation over the events themselves, for comparison;
- online_per_day: the devices-online reconstruction over 30 days (the dashboard);
- record: one event (record) and a batch of 1,000 (record_many, one INSERT), each committed.

Prints EXPLAIN (ANALYZE, BUFFERS) of the 30-day per-type count (which partitions it reads) and
writes bench/out/analytics.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timedelta, timezone

from bench.audit import ROOT, admin_url, log

DATABASE, OWNER, APP_ROLE = "portal_bench_analytics", "portal_bench_owner", "portal_bench_app"
TYPES = ["device.status", "member.signin", "door.opened", "backup.done", "agent.task", "sensor.alarm"]


def make_app(admin: str):
    from portal import create_app
    from portal.database.provision import url_for_role
    return create_app({"PORTAL_ENV": "testing", "SECRET_KEY": "bench-" + "x" * 32, "LOG_LEVEL": "WARNING",
                       "DATABASE_URL": url_for_role(admin, APP_ROLE, DATABASE), "SERVER_NAME": None,
                       "MIGRATION_DATABASE_URL": url_for_role(admin, OWNER, DATABASE)})


FILL = """
INSERT INTO analytics_events (tenant_id, occurred_at, event_type, properties, source)
SELECT :t, now() - (random() * interval '90 days'),
       (ARRAY['device.status','member.signin','door.opened','backup.done','agent.task','sensor.alarm'])[1 + (g % 6)],
       CASE WHEN g % 6 = 0 THEN jsonb_build_object('from', CASE WHEN g % 4 = 0 THEN 'online' ELSE 'offline' END,
                                                   'to', CASE WHEN g % 4 = 0 THEN 'offline' ELSE 'online' END)
            ELSE jsonb_build_object('n', g) END, 'portal'
  FROM generate_series(1, :n) g
"""


ROLLUP = """
INSERT INTO analytics_daily (tenant_id, day, event_type, events, online_delta)
SELECT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date, event_type, count(*),
       coalesce(sum(CASE WHEN event_type = 'device.status' THEN coalesce((properties->>'to' = 'online')::int, 0)
                         - coalesce((properties->>'from' = 'online')::int, 0) END), 0)
  FROM analytics_events GROUP BY 1, 2, 3
"""


def setup(admin: str, big: int, tenants: int, each: int, regenerate: bool):
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from portal.database.provision import provision, url_for_role
    provision(admin, DATABASE, OWNER, APP_ROLE, fresh=regenerate)
    app = make_app(admin)
    with app.app_context():
        upgrade()
    owner = sa.create_engine(url_for_role(admin, OWNER, DATABASE), poolclass=sa.pool.NullPool)
    with owner.begin() as conn:
        start = (datetime.now(timezone.utc) - timedelta(days=100)).date()
        conn.execute(sa.text("SELECT portal_analytics_partitions(:d, 7)"), {"d": start})
        big_id = conn.execute(sa.text("SELECT id FROM tenants WHERE slug = 'analytics-bench'")).scalar()
    if big_id is None:
        log(f"generating {big:,} events for the big tenant and {tenants} x {each:,} for the others")
        with owner.begin() as conn:
            big_id = conn.execute(sa.text("INSERT INTO tenants (name, slug) VALUES ('Analytics Bench', 'analytics-bench') "
                                          "RETURNING id")).scalar()
            conn.execute(sa.text(FILL), {"t": big_id, "n": big})
            for i in range(tenants):
                tid = conn.execute(sa.text("INSERT INTO tenants (name, slug) VALUES (:n, :s) RETURNING id"),
                                   {"n": f"Other {i}", "s": f"analytics-other-{i}"}).scalar()
                conn.execute(sa.text(FILL), {"t": tid, "n": each})
            conn.execute(sa.text(ROLLUP))
        with owner.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE analytics_events"))
        log("generated")
    owner.dispose()
    return app, big_id


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", type=int, default=500_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--each", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args(argv)
    import sqlalchemy as sa

    from portal.analytics import events, queries
    from portal.database.context import tenant_scope
    from portal.extensions import db
    app, big_id = setup(admin_url(), args.big, args.tenants, args.each, args.regenerate)
    today = datetime.now(timezone.utc).date()
    first30, first90 = today - timedelta(days=29), today - timedelta(days=89)
    results = {"big_tenant_events": args.big, "other_events": args.tenants * args.each}
    with app.app_context(), tenant_scope(db.session, big_id, actor="bench:setup"):
        results["per_day_30_ms"] = median_ms(lambda: queries.per_day(big_id, "door.opened", first30, today), args.runs)
        results["per_day_90_ms"] = median_ms(lambda: queries.per_day(big_id, "door.opened", first90, today), args.runs)
        results["per_day_by_type_30_ms"] = median_ms(lambda: queries.per_day_by_type(big_id, first30, today),
                                                     args.runs)
        raw = sa.text("SELECT (occurred_at AT TIME ZONE 'UTC')::date, event_type, count(*) FROM analytics_events "
                      "WHERE tenant_id = :t AND occurred_at >= :lo GROUP BY 1, 2")
        results["per_day_by_type_30_from_events_ms"] = median_ms(lambda: db.session.execute(raw, {
            "t": big_id, "lo": queries.utc_midnight(first30)}).all(), max(args.runs // 4, 3))
        results["online_per_day_30_ms"] = median_ms(lambda: queries.online_per_day(big_id, 100, today), args.runs)
        plan = "\n".join(db.session.scalars(sa.text("EXPLAIN (ANALYZE, BUFFERS) " + queries._PER_DAY.text), {
            "t": big_id, "type": "door.opened", "lo": queries.utc_midnight(first30),
            "hi": queries.utc_midnight(today + timedelta(days=1))}))
        db.session.commit()

        def one():
            events.record(big_id, "bench.one", {"k": 1})
            db.session.commit()

        def batch():
            events.record_many(big_id, [events.event("bench.batch", {"i": i}) for i in range(1000)])
            db.session.commit()
        results["record_one_ms"] = median_ms(one, args.runs)
        results["record_many_1000_ms"] = median_ms(batch, args.runs)
    results["explain_per_day_30"] = plan
    print(plan)
    for key, value in results.items():
        if key != "explain_per_day_30":
            print(f"{key:>24}: {value}")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "analytics.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
