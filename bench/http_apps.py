"""The two WSGI apps `make bench-http` serves with gunicorn (bench/http.py starts them).

- `portal()`: the portal as deployed (production settings, RLS probe, every extension and hook),
  on the `make bench` database as its serving role.
- `bare()`: the limit: Flask + psycopg_pool + Jinja, no extension. Per request: Flask's cookie
  session (same secret and cookie as the portal), one session lookup by hashed token, one
  transaction with `set_config` (tenant, user, custom plans) and the portal's own compiled
  page SQL, the rows through the portal's `page_from_rows` and rendered with the portal's row
  template (devices/_device_rows.html). The full page is the portal's page chrome, captured
  once from the portal (BENCH_PAGE_SHELL, a file), around the same fragment: what the page
  would cost with chrome that costs nothing.

Configured from the environment: BENCH_ADMIN_URL (superuser URL of the bench server),
BENCH_SECRET_KEY, BENCH_TENANT_ID, BENCH_SLUG, BENCH_PAGE_SHELL.
"""
from __future__ import annotations

import hashlib
import os
from types import SimpleNamespace
from uuid import UUID


def _admin() -> str:
    return os.environ["BENCH_ADMIN_URL"]


def portal():
    from bench.devices import APP_ROLE, DATABASE, OWNER
    from pathlib import Path

    from portal import create_app
    from portal.config import ROOT, _dev_master_key
    from portal.database.provision import url_for_role
    admin = _admin()
    # Production mode needs master keys: the one the data was generated with (testing mode's, in instance/).
    masters = os.environ.get("PORTAL_MASTER_KEYS") or _dev_master_key(Path(os.environ.get("INSTANCE_PATH")
                                                                            or ROOT / "instance"))
    return create_app({"PORTAL_ENV": "production", "SECRET_KEY": os.environ["BENCH_SECRET_KEY"],
                       "PORTAL_MASTER_KEYS": masters,
                       "LOG_LEVEL": "WARNING", "BASE_URL": "http://127.0.0.1", "SESSION_COOKIE_SECURE": False,
                       "DATABASE_URL": url_for_role(admin, APP_ROLE, DATABASE),
                       "MIGRATION_DATABASE_URL": url_for_role(admin, OWNER, DATABASE)})


_LOOKUP = ("SELECT s.user_id FROM user_sessions s WHERE s.token_hash = %s AND s.revoked_at IS NULL "
           "AND s.expires_at > now()")
# The owner's permissions too: the permission and site policies read them (migration 0027).
_ENTER = ("SELECT set_config('app.tenant_id', %s, true) AS t, set_config('app.user_id', %s, true) AS u, "
          "set_config('app.permissions', %s, true) AS r, set_config('plan_cache_mode', 'force_custom_plan', true) AS p")


def bare():
    from flask import Flask, Response, abort, render_template, request, session
    from psycopg.rows import namedtuple_row
    from psycopg_pool import ConnectionPool
    from sqlalchemy.dialects import postgresql

    from bench.devices import APP_ROLE, DATABASE, libpq
    from portal.config import ROOT
    from portal.database.provision import url_for_role
    from portal.devices.queries import ListState, page_from_rows, page_statement
    from portal.tenancy.permissions import Permission

    app = Flask("bare", template_folder=str(ROOT / "templates"))
    app.config.update(SECRET_KEY=os.environ["BENCH_SECRET_KEY"], SESSION_COOKIE_NAME="portal_session")
    slug, tenant_id = os.environ["BENCH_SLUG"], UUID(os.environ["BENCH_TENANT_ID"])
    pool = ConnectionPool(libpq(url_for_role(_admin(), APP_ROLE, DATABASE)), min_size=2, max_size=5, open=True,
                          kwargs={"row_factory": namedtuple_row})
    dialect = postgresql.psycopg.dialect()
    ctx = SimpleNamespace(tenant=SimpleNamespace(id=tenant_id, slug=slug, name=slug), tenant_id=tenant_id,
                          sees_all=True, user_id=None)
    compiled: dict = {}
    shell_path = os.environ.get("BENCH_PAGE_SHELL")
    shell = open(shell_path).read().split("\x00", 1) if shell_path and os.path.exists(shell_path) else ["", ""]
    app.jinja_env.globals.update(can=lambda permission: True, Permission=Permission, ctx=ctx)

    def rows(state):
        statement, values = page_statement(ctx, state)
        key = statement
        if key not in compiled:
            compiled[key] = statement.compile(dialect=dialect)
        c = compiled[key]
        token = session.get("sid")
        if not token:
            abort(403)
        with pool.connection() as conn:  # one transaction: lookup, context, page; committed on exit
            found = conn.execute(_LOOKUP, (hashlib.sha256(token.encode()).digest(),)).fetchone()
            if found is None:
                abort(403)
            conn.execute(_ENTER, (str(tenant_id), str(found[0]), ",".join(sorted(p.value for p in Permission))))
            return conn.execute(c.string, c.construct_params(values)).fetchall()

    def index(tenant_slug):
        state = ListState.from_args(request.args)
        page = page_from_rows(rows(state), state)
        fragment = render_template("devices/_device_rows.html", page=page)
        if request.headers.get("HX-Request"):
            return Response(fragment)
        return Response(shell[0] + fragment + shell[1])

    app.add_url_rule("/t/<tenant_slug>/devices/", "devices.index", index)
    app.add_url_rule("/t/<tenant_slug>/devices/count", "devices.count", lambda tenant_slug: "")
    app.add_url_rule("/t/<tenant_slug>/devices/export.csv", "devices.export", lambda tenant_slug: "")
    app.url_defaults(lambda endpoint, values: values.setdefault("tenant_slug", slug))
    return app
