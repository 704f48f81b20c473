"""`flask keys ...`: what the keys protect, and their rotation (docs/operations.md, Rotating keys)."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import text

from ..extensions import db

keys_cli = AppGroup("keys", help="The keyring: master keys (PORTAL_MASTER_KEYS) and data keys.")


@keys_cli.command("status")
@click.option("--tenant", "slug", default=None, help="Only this tenant (and the installation).")
def status_command(slug: str | None):
    """Master keys and what they wrap; each owner's data key versions; sealed values per column and version."""
    from .rotation import status
    report = status(slug)
    click.echo("Master keys (PORTAL_MASTER_KEYS, newest first):")
    for m in report.masters:
        click.echo(f"  {m['id']}{'  newest' if m['newest'] else '        '}  wraps {m['wraps']} live data key(s)")
    for kid, count in report.unknown_masters.items():
        click.echo(f"  {kid}  NOT CONFIGURED: {count} live data key(s) cannot be unwrapped; add it back, "
                   "then run `flask keys rotate-master`")
    click.echo("Data keys:")
    for owner, rows in report.keys.items():
        versions = ", ".join(f"v{r['version']} " + ("retired" if r["retired"] else f"live (master {r['master']})")
                             for r in rows) or "none yet (made on first use)"
        click.echo(f"  {owner}: {versions}" + ("  ROTATING" if owner in report.rotating else ""))
    click.echo("Sealed values (rows per data key version):")
    for column, counts in report.columns.items():
        shown = ", ".join(f"{'not sealed' if v == 0 else f'v{v}'}: {n}" for v, n in sorted(counts.items())) or "none"
        click.echo(f"  {column}: {shown}")
    if report.shreds_pending:
        click.echo("Purged tenants whose data keys backups still hold (retire these master keys to finish "
                   "the shredding):")
        for s in report.shreds_pending:
            click.echo(f"  {s['slug']} (purged {str(s['shredded_at'])[:10]}): {', '.join(s['masters'])}")


@keys_cli.command("rotate-master")
def rotate_master_command():
    """Re-wrap every data key under the newest master key; then the older ones can leave PORTAL_MASTER_KEYS."""
    from .keyring import master_keys
    from .rotation import rotate_master
    counts = rotate_master()
    click.echo(f"Re-wrapped {counts['rewrapped']} data key(s) under master key {master_keys()[0][0]} "
               f"({counts['current']} already were).")
    for problem in counts["unreadable"]:
        click.echo(f"Not re-wrapped: {problem}", err=True)
    if counts["unreadable"]:
        raise click.exceptions.Exit(1)
    if len(master_keys()) > 1:
        click.echo("No data key needs the older master key(s) now: remove them from PORTAL_MASTER_KEYS "
                   "(and from wherever they are kept) once every process runs with the new list.")


@keys_cli.command("rotate")
@click.option("--tenant", "slug", default=None, help="The tenant whose data key to rotate.")
@click.option("--installation", is_flag=True, help="Rotate the installation's own data key instead.")
def rotate_command(slug: str | None, installation: bool):
    """A new data key version; the worker re-seals the values in batches, then retires the old version."""
    from .rotation import start
    if bool(slug) == installation:
        raise click.UsageError("Name one: --tenant SLUG or --installation.")
    tenant_id = None
    if slug:
        tenant_id = db.session.scalar(text("SELECT id FROM tenants WHERE slug = :s"), {"s": slug})
        if tenant_id is None:
            raise click.ClickException(f"No tenant {slug}.")
    version, resumed = start(tenant_id)
    db.session.commit()
    who = slug or "the installation"
    click.echo(f"{'Resumed the rotation of' if resumed else 'Rotating'} {who} to data key version {version}: "
               "the worker re-seals its values (`flask keys status` shows the progress); the old version "
               "stays readable until then and is retired at the end.")


@keys_cli.command("adopt")
@click.option("--from", "source_url", required=True, envvar="KEYS_SOURCE_URL",
              help="The live database's owner URL (reads every tenant's keys).")
def adopt_command(source_url: str):
    """After restoring a backup taken under a retired master key: take the live database's data key rows
    (wrapped by the current master key) for the tenants this database holds. Purged tenants stay shredded."""
    from .rotation import adopt
    counts = adopt(source_url)
    click.echo(f"Adopted {counts['tenant_keys']} tenant data key row(s) and {counts['installation_keys']} of the "
               f"installation; {counts['skipped']} row(s) of tenants not in this database left out.")
