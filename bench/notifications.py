"""Notifications benchmark (not part of `make test`): the bell's unread-count query at
1,000,000 notifications.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.notifications

In a database `portal_bench_notify` (embedded PostgreSQL under instance/pgbench, or on
BENCH_DATABASE_URL, a superuser URL), provisioned and migrated like the real one: 2,000 users
with 500 notifications each (1,000,000 rows; about one in ten unread, one user with all 500 unread
to show the cap), then, as the serving role under RLS (app.user_id set as a request sets it), the
exact statement of `services.unread_count` with EXPLAIN (ANALYZE, BUFFERS), and its median over
200 runs. Writes bench/out/notifications.json.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DATABASE, OWNER, APP_ROLE = "portal_bench_notify", "portal_bench_owner", "portal_bench_app"
USERS, PER_USER = 2000, 500


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def admin_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    from portal.database import embedded
    return embedded.admin_url(embedded.start(ROOT / "instance" / "pgbench"))


def main() -> int:
    from flask_migrate import upgrade

    from portal import create_app
    from portal.database.context import user_scope
    from portal.database.provision import provision, url_for_role
    from portal.extensions import db
    from portal.notifications.models import Notification
    from portal.notifications.services import COUNT_CAP

    admin = admin_url()
    provision(admin, DATABASE, OWNER, APP_ROLE)
    app = create_app({"PORTAL_ENV": "testing", "SECRET_KEY": "bench-" + "x" * 32, "LOG_LEVEL": "WARNING",
                      "DATABASE_URL": url_for_role(admin, APP_ROLE, DATABASE), "SERVER_NAME": None,
                      "MIGRATION_DATABASE_URL": url_for_role(admin, OWNER, DATABASE)})
    with app.app_context():
        upgrade()
    owner = sa.create_engine(url_for_role(admin, OWNER, DATABASE))
    with owner.begin() as conn:
        have = conn.execute(sa.text("SELECT count(*) FROM notifications")).scalar()
        if have < USERS * PER_USER:
            log(f"filling {USERS * PER_USER:,} notifications")
            conn.execute(sa.text("DELETE FROM notifications"))
            conn.execute(sa.text(
                "INSERT INTO users (email, name) SELECT 'bench-' || i || '@example.com', 'Bench ' || i "
                "FROM generate_series(1, :n) i ON CONFLICT DO NOTHING"), {"n": USERS})
            conn.execute(sa.text(
                "INSERT INTO notifications (user_id, kind, params, link, created_at, read_at) "
                "SELECT u.id, 'device_error', jsonb_build_object('device', 'Cam ' || g), '/t/x/devices/' || g, "
                "       now() - make_interval(mins => g), CASE WHEN g % 10 = 0 THEN NULL ELSE now() END "
                "FROM (SELECT id FROM users WHERE email LIKE 'bench-%' ORDER BY email LIMIT :n) u, "
                "     generate_series(1, :per) g"), {"n": USERS, "per": PER_USER})
            conn.execute(sa.text("UPDATE notifications SET read_at = NULL WHERE user_id = "
                                 "(SELECT id FROM users WHERE email = 'bench-1@example.com')"))
        conn.execute(sa.text("ANALYZE notifications"))
        total = conn.execute(sa.text("SELECT count(*) FROM notifications")).scalar()
        typical = conn.execute(sa.text("SELECT id FROM users WHERE email = 'bench-2@example.com'")).scalar()
        heavy = conn.execute(sa.text("SELECT id FROM users WHERE email = 'bench-1@example.com'")).scalar()
    with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM notifications"))  # index-only scans want a current visibility map
    results = {"rows": total}
    with app.app_context():
        for label, user_id in (("typical user (50 unread)", typical), ("user with 500 unread (capped)", heavy)):
            capped = sa.select(Notification.id).where(Notification.user_id == user_id,
                                                      Notification.read_at.is_(None)).limit(COUNT_CAP).subquery()
            stmt = sa.select(sa.func.count()).select_from(capped)
            sql = str(stmt.compile(db.engine, compile_kwargs={"literal_binds": True}))
            with user_scope(db.session, user_id):
                plan = "\n".join(r[0] for r in db.session.execute(sa.text("EXPLAIN (ANALYZE, BUFFERS) " + sql)))
                times = []
                for _ in range(200):
                    start = time.perf_counter()
                    count = db.session.scalar(stmt)
                    times.append((time.perf_counter() - start) * 1000)
                db.session.rollback()
            results[label] = {"count": count, "median_ms": round(statistics.median(times), 3),
                              "p95_ms": round(sorted(times)[189], 3), "plan": plan}
            log(f"{label}: count={count} median={statistics.median(times):.3f} ms (round trip)\n{plan}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "notifications.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
