"""`flask tenants purge`: remove the tenants whose deletion grace period has ended (run it
daily, from cron or the job worker)."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import func, select, text

from .. import keys
from ..extensions import db
from ..tenants.models import Tenant, TenantStatus

tenants_cli = AppGroup("tenants", help="Tenants.")


def purge_due() -> list[str]:
    """Purge every tenant past its grace period, one transaction each; the names purged."""
    due = db.session.execute(select(Tenant.id, Tenant.name).where(
        Tenant.status == TenantStatus.PENDING_DELETION, Tenant.purge_after <= func.now())).all()
    db.session.rollback()
    purged = []
    for tenant_id, name in due:
        if db.session.scalar(text("SELECT portal_purge_tenant(:t)"), {"t": tenant_id}):
            purged.append(name)
        db.session.commit()
        keys.forget(tenant_id)  # its data keys went first (crypto-shredding): none stays in memory here
    return purged


@tenants_cli.command("purge")
def purge():
    """Delete every row of the tenants whose deletion grace period has ended; keep tombstones."""
    purged = purge_due()
    click.echo(f"Purged {len(purged)} tenant{'s' if len(purged) != 1 else ''}"
               + (f": {', '.join(purged)}." if purged else "."))
    if purged:
        click.echo("Their data keys are destroyed. Backups taken before now still hold them, wrapped by the "
                   "current master key: the shredding reaches those backups once it is retired "
                   "(new key first in PORTAL_MASTER_KEYS, `flask keys rotate-master`, old key removed; "
                   "`flask keys status` lists what is pending).")
