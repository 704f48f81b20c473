"""Task list timings on a big tenant: `python bench/tasks.py ADMIN_URL [N]` (a scratch database).

Loads the sample, adds N tasks (default 100,000) to acme-corp with SQL, then times the list's
htmx fragment (test client, median of 15) for an owner (every site) and a member (one site),
by due date, by priority, a title search, the overdue filter, the count request, the board and
/tasks (my tasks across organizations).
"""
from __future__ import annotations

import re
import statistics
import sys
import time

sys.path.insert(0, "tests")

import sqlalchemy as sa
from conftest import make_app
from flask_migrate import upgrade

from portal.database.provision import provision, url_for_role
from portal.extensions import db
from portal.seeding import load_sample

FILL = """
INSERT INTO tasks (tenant_id, title, description, status, priority, due_on, site_id, assignee_id, created_by,
                   completed_at)
SELECT t.id, 'Routine task ' || g || CASE WHEN g % 1000 = 0 THEN ' lobby camera' ELSE '' END, '',
       s.status::task_status, (ARRAY['low','medium','high','urgent'])[1 + g % 4]::task_priority,
       CASE WHEN g % 7 = 0 THEN NULL ELSE current_date + (g % 200) - 100 END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE (SELECT id FROM sites WHERE tenant_id = t.id ORDER BY name
                                            OFFSET (g % 2) LIMIT 1) END,
       NULL, NULL, CASE WHEN s.status = 'done' THEN now() END
  FROM tenants t, generate_series(1, :n) g,
       LATERAL (SELECT (ARRAY['open','in_progress','blocked','done','cancelled'])[1 + g % 5] AS status) s
 WHERE t.slug = 'acme-corp'
"""


def main(admin: str, n: int) -> None:
    name = "portal_bench_tasks"
    provision(admin, name, "portal_test_owner", "portal_test_app", fresh=True)
    urls = {"app": url_for_role(admin, "portal_test_app", name), "owner": url_for_role(admin, "portal_test_owner", name)}
    app = make_app(urls, CHECK_RLS=False)
    with app.app_context():
        upgrade()
        load_sample("portal-demo-2026")
        db.session.commit()
    engine = sa.create_engine(urls["owner"])
    with engine.begin() as conn:
        started = time.perf_counter()
        conn.execute(sa.text(FILL), {"n": n})
        conn.execute(sa.text("ANALYZE tasks"))
        print(f"inserted {n:,} tasks in {time.perf_counter() - started:.1f} s")
    for email in ("alice@acme.com", "bob@acme.com"):
        c = app.test_client()
        page = c.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
        c.post("/login", data={"email": email, "password": "portal-demo-2026", "csrf_token": token})
        for label, url in [("list by due date", "/t/acme-corp/tasks/"),
                           ("list by priority", "/t/acme-corp/tasks/?sort=priority"),
                           ("page 2 by due date", None),
                           ("search 'lobby cam'", "/t/acme-corp/tasks/?q=lobby+cam"),
                           ("overdue", "/t/acme-corp/tasks/?overdue=1"),
                           ("count", None),
                           ("board", "/t/acme-corp/tasks/board"),
                           ("my tasks (/tasks)", "/tasks")]:
            if label == "page 2 by due date":
                html = c.get("/t/acme-corp/tasks/", headers={"HX-Request": "true"}).get_data(as_text=True)
                url = re.search(r'rel="next" href="([^"]+)"', html).group(1).replace("&amp;", "&")
            if label == "count":
                html = c.get("/t/acme-corp/tasks/", headers={"HX-Request": "true"}).get_data(as_text=True)
                url = re.search(r'hx-get="([^"]+/count[^"]+)"', html).group(1).replace("&amp;", "&")
            times = []
            for _ in range(15):
                started = time.perf_counter()
                r = c.get(url, headers={"HX-Request": "true"})
                times.append((time.perf_counter() - started) * 1000)
                assert r.status_code == 200, (url, r.status_code)
            print(f"{email:16} {label:22} median {statistics.median(times):7.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
         int(sys.argv[2]) if len(sys.argv) > 2 else 100_000)
