"""Screenshots of the main pages as the sample owner, for before/after comparisons (issue 22).

    .venv/bin/python -m bench.screenshots OUTDIR PREFIX [--full]

Starts the portal as the tests do: the embedded PostgreSQL under instance/pgtest, a fresh
database of its own (dropped at the end), migrated and loaded with the sample data, served from
a thread; signs in as alice@acme.com (owner of acme-corp) in Debian's Chromium and writes
OUTDIR/PREFIX-<page>-<width>.png for the dashboard, device list, members, roles, settings and
account at 1280 and 390 px (the viewport; --full for the whole page), and the phone menu opened.
"""
from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "portal-demo-2026"
EMAIL = "alice@acme.com"
PAGES = [("dashboard", "/t/acme-corp/"), ("devices", "/t/acme-corp/devices/"), ("members", "/t/acme-corp/members/"),
         ("roles", "/t/acme-corp/roles/"), ("settings", "/t/acme-corp/settings/"), ("account", "/account")]
WIDTHS = {1280: 900, 390: 844}
# Wait until htmx has settled the page (the switcher, the bell and lazy panels load after it).
SETTLED = """() => document.readyState === 'complete' && !document.querySelector('.htmx-request')
  && !document.querySelector('[hx-trigger^="load"]:empty')"""


def serve(app):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("prefix")
    parser.add_argument("--full", action="store_true", help="the whole page, not only the viewport")
    args = parser.parse_args()
    import logging
    logging.disable(logging.INFO)  # the app logs every request; only the file names matter here

    from flask_migrate import upgrade
    from playwright.sync_api import sync_playwright

    from portal import create_app
    from portal.database import embedded
    from portal.database.provision import provision, url_for_role
    from portal.extensions import db
    from portal.seeding import load_sample

    admin = embedded.admin_url(embedded.start(ROOT / "instance" / "pgtest"))
    name, owner, role = f"portal_shots_{os.getpid()}", "portal_test_owner", "portal_test_app"
    provision(admin, name, owner, role, fresh=True)
    try:
        app = create_app({"PORTAL_ENV": "testing", "SECRET_KEY": "shots-" + "x" * 32, "SERVER_NAME": None,
                          "DATABASE_URL": url_for_role(admin, role, name),
                          "MIGRATION_DATABASE_URL": url_for_role(admin, owner, name),
                          "SEED_PASSWORD": PASSWORD, "RATELIMIT_LOGIN": "10000 per minute"})
        with app.app_context():
            upgrade()
            load_sample(PASSWORD)
            db.session.commit()
        server = serve(app)
        base = f"http://127.0.0.1:{server.server_port}"
        args.outdir.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto("/login")
            page.get_by_label("Email").fill(EMAIL)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/t/**")
            for width, height in WIDTHS.items():
                page.set_viewport_size({"width": width, "height": height})
                for label, path in PAGES:
                    page.goto(path)
                    page.wait_for_function(SETTLED, polling=100)
                    out = args.outdir / f"{args.prefix}-{label}-{width}.png"
                    page.screenshot(path=str(out), full_page=args.full)
                    print(out)
                if width == 390:  # the phone menu, opened on the dashboard
                    page.goto(PAGES[0][1])
                    page.wait_for_function(SETTLED, polling=100)
                    page.get_by_role("button", name="Menu").click()
                    out = args.outdir / f"{args.prefix}-menu-{width}.png"
                    page.screenshot(path=str(out))
                    print(out)
            browser.close()
        server.shutdown()
    finally:
        import psycopg
        from psycopg import sql

        from portal.database.provision import libpq_url
        with psycopg.connect(libpq_url(admin), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
