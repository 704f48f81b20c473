"""`flask audit verify`: walk the hash chains; exit 1 naming the first bad row of each tenant."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from ..database.context import tenant_scope
from ..extensions import db
from ..tenants.models import Tenant
from . import chain, retention

audit_cli = AppGroup("audit", help="The audit trail: verify its hash chains, prune past retention.")


@audit_cli.command("verify")
@click.option("--tenant", "slug", help="Only this organization (its slug).")
def verify(slug: str | None):
    """Recompute every tenant's chain; exit status 1 if any row does not match."""
    query = select(Tenant.id, Tenant.slug).order_by(Tenant.slug)
    if slug:
        query = query.where(Tenant.slug == slug)
    tenants = db.session.execute(query).all()
    if slug and not tenants:
        raise click.ClickException(f"No organization with the slug {slug!r}.")
    failed = 0
    for tenant_id, tenant_slug in tenants:
        with tenant_scope(db.session, tenant_id, actor=None):
            result = chain.verify_tenant(tenant_id)
        db.session.rollback()  # read only; ends the server-side cursor's transaction
        if result.problem:
            failed += 1
            click.echo(f"{tenant_slug}: TAMPERED at {result.problem}", err=True)
        else:
            click.echo(f"{tenant_slug}: {result.rows} rows verified, head row {result.head_seq} "
                       f"{result.head_hash.hex()}")
    if failed:
        click.echo(f"{failed} of {len(tenants)} chain(s) do not verify.", err=True)
        raise SystemExit(1)
    click.echo(f"All {len(tenants)} chain(s) verify.")


@audit_cli.command("prune")
@click.option("--tenant", "slug", help="Only this organization (its slug).")
def prune(slug: str | None):
    """Delete audit rows past each tenant's retention (oldest first, leaving a checkpoint)."""
    query = select(Tenant.id, Tenant.slug, Tenant.settings).order_by(Tenant.slug)
    if slug:
        query = query.where(Tenant.slug == slug)
    tenants = db.session.execute(query).all()
    if slug and not tenants:
        raise click.ClickException(f"No organization with the slug {slug!r}.")
    total = 0
    for tenant_id, tenant_slug, settings in tenants:
        with tenant_scope(db.session, tenant_id, actor="cli:audit.prune"):
            deleted = retention.prune(tenant_id, settings)
        db.session.commit()  # tenant by tenant: each holds its chain's lock only briefly
        total += deleted
        if deleted:
            click.echo(f"{tenant_slug}: {deleted} rows older than {retention.retention_days(settings)} days pruned.")
    click.echo(f"Pruned {total} rows in {len(tenants)} organization(s).")
