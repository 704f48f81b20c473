"""Create the portal's database and its two roles on a PostgreSQL server.

Used for the embedded server and by the test suite (on the embedded server or
on TEST_DATABASE_URL). A production server is provisioned by its DBA with the
statements the README shows; this code does the same thing.
"""
from __future__ import annotations

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url


def url_for_role(admin_url: str, role: str, database: str) -> str:
    """The admin URL rewritten to connect as `role` to `database` (trust/peer auth or no password)."""
    url = make_url(admin_url).set(drivername="postgresql+psycopg", username=role, password=None, database=database)
    return url.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def provision(admin_url: str, database: str, owner: str, app: str, *, fresh: bool = False) -> None:
    """Idempotently create `owner` (owns the schema, runs migrations) and `app`
    (serves requests: no superuser, no BYPASSRLS, owns nothing)."""
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        # Roles are cluster-wide: two processes provisioning at once (test workers, a helper's
        # run) must not both CREATE or ALTER the same role. Released when the connection closes.
        conn.execute("SELECT pg_advisory_lock(hashtext('portal.provision'))")
        for role, attrs in (
            (owner, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS"),
            (app, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT"),
        ):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL(f"{verb} ROLE {{}} WITH {attrs}").format(sql.Identifier(role)))
        if fresh:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                sql.Identifier(database), sql.Identifier(owner)))
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
            conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(app)))
    # PostgreSQL 13/14 let PUBLIC create objects in schema public: the serving
    # role must never own anything, so close that and hand the schema to the owner.
    with psycopg.connect(libpq_url(make_url(admin_url).set(database=database).render_as_string(False)),
                         autocommit=True) as conn:
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(owner)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(app)))
