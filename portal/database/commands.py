"""Operator commands: `flask db validate|status|reset` and `flask backup create|restore`."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup
from flask_migrate.cli import db as db_group

from .provision import libpq_url
from .validate import validate


def init_app(app: Flask) -> None:  # noqa: ARG001 (the commands join Flask-Migrate's `db` group)
    app.cli.add_command(backup_group)


@db_group.command("validate")
def validate_command():
    """Check the live schema's invariants; exit 1 listing each violation."""
    problems = validate(current_app)
    for problem in problems:
        click.echo(f"FAIL {problem}")
    if problems:
        raise SystemExit(1)
    click.echo("OK: tenant tables isolated and keyed by tenant, serving role least-privileged, "
               "schema at head and matching the models.")


@db_group.command("status")
def status_command():
    """Current revision, pending migrations, and whether `validate` passes."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    script = ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())
    engine = sa.create_engine(_owner_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    engine.dispose()
    heads = script.get_heads()
    click.echo(f"current: {', '.join(current) or 'none (empty database)'}")
    click.echo(f"head:    {', '.join(heads)}")
    pending = [rev.revision for rev in script.iterate_revisions(heads, current[0] if current else "base")
               if rev.revision not in current] if set(current) != set(heads) else []
    click.echo(f"pending: {', '.join(reversed(pending)) or 'none'}")
    problems = validate(current_app) if not pending else ["migrations pending"]
    click.echo("validate: " + ("OK" if not problems else f"{len(problems)} problem(s); run `flask db validate`"))
    if pending or problems:
        raise SystemExit(1)


@db_group.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset_command(yes: bool):
    """Drop every table, migrate to head and load the sample data (development and testing only)."""
    if current_app.config["PORTAL_ENV"] == "production":
        raise click.ClickException("Refusing to reset a production database (PORTAL_ENV=production).")
    if not yes:
        click.confirm("Drop all data in this database and start again?", abort=True)
    from flask_migrate import downgrade, upgrade

    from ..extensions import db
    from ..seeding import load_sample
    db.session.remove()
    db.engine.dispose()  # no pooled connection may hold a lock on a table about to go
    downgrade(revision="base")
    upgrade()
    load_sample(current_app.config["SEED_PASSWORD"])
    db.session.commit()
    click.echo("Database reset: migrated to head, sample data loaded.")


backup_group = AppGroup("backup", help="Back up and restore the database (pg_dump/pg_restore, custom format).")


def _owner_url() -> str:
    return current_app.config.get("MIGRATION_DATABASE_URL") or current_app.config["DATABASE_URL"]


def _tool(name: str) -> str:
    """A pg_dump/pg_restore at least as new as the server: the PostgreSQL client on PATH, or the one the
    embedded server ships (pgserver's PostgreSQL 16)."""
    engine = sa.create_engine(_owner_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        server_major = int(conn.execute(sa.text("SHOW server_version_num")).scalar()) // 10000
    engine.dispose()
    candidates = [shutil.which(name)]
    try:
        from pgserver._commands import POSTGRES_BIN_PATH
        candidates.append(str(POSTGRES_BIN_PATH / name))
    except ImportError:
        pass
    for candidate in filter(None, candidates):
        try:
            version = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        match = re.search(r"(\d+)(?:\.\d+)?", version)
        if match and int(match.group(1)) >= server_major:
            return candidate
    raise click.ClickException(f"No {name} for PostgreSQL {server_major} or newer: install the PostgreSQL client tools.")


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    if result.returncode != 0:
        raise click.ClickException(f"{Path(command[0]).name} failed:\n{result.stderr.strip()}")


@backup_group.command("create")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def backup_create(file: Path | None):
    """Write the whole database (schema, data, grants) to FILE (default instance/backups/portal-<time>.dump)."""
    if file is None:
        folder = Path(current_app.config["INSTANCE_DIR"]) / "backups"
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / f"portal-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.dump"
    # As the owner: row-level security is forced, so the owner needs BYPASSRLS to read every tenant's rows.
    _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(file), "--dbname", libpq_url(_owner_url())])
    click.echo(f"Backup written to {file} ({file.stat().st_size} bytes).")


@backup_group.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace the data of a database that is not empty.")
def backup_restore(file: Path, force: bool):
    """Restore FILE (from `flask backup create`) into the database, in one transaction."""
    engine = sa.create_engine(_owner_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        tables = conn.execute(sa.text(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'")).scalar()
    engine.dispose()
    if tables and not force:
        raise click.ClickException(f"The database is not empty ({tables} tables): restoring would replace "
                                   "their data. Add --force to do it.")
    from ..extensions import db
    db.engine.dispose()
    if tables:
        _drop_partitioned_tables()
    _run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
          "--dbname", libpq_url(_owner_url()), str(file)])
    click.echo(f"Restored {file}.")


def _drop_partitioned_tables() -> None:
    """pg_restore --clean cannot clean a partitioned table: it drops each partition's inherited
    constraints first, which PostgreSQL refuses ("cannot drop inherited constraint"). Such tables
    (analytics_events and its months) are dropped beforehand; the file brings them back with their data."""
    engine = sa.create_engine(_owner_url(), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        names = conn.execute(sa.text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'p' AND NOT c.relispartition")).scalars().all()
        for name in names:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS public."{name}" CASCADE'))
    engine.dispose()
