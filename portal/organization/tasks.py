"""Jobs of the organization area: a tenant's export, and the daily purge of deleted tenants."""
from __future__ import annotations

from uuid import UUID

from ..extensions import db
from ..jobs.engine import flask_app, jobs


@jobs.task(name="tenants.export", retry=0)
def export_tenant(export_id: str, tenant_id: str, base_url: str = "") -> None:
    """base_url is ignored (jobs queued by older versions carry it): links use BASE_URL."""
    from .export import run
    app = flask_app()
    with app.app_context():
        try:
            run(UUID(export_id), UUID(tenant_id))
        finally:
            db.session.remove()


@jobs.periodic(cron="17 3 * * *", periodic_id="tenants.purge")
@jobs.task(name="tenants.purge", queueing_lock="tenants.purge")
def purge_tenants(timestamp: int) -> int:
    from ..admin.cli import purge_due
    app = flask_app()
    with app.app_context():
        purged = purge_due()
        if purged:
            app.logger.info("purged %s tenant(s): %s; their data keys are destroyed, and backups taken before "
                            "now lose them once the current master key is retired (flask keys status)",
                            len(purged), ", ".join(purged))
        return len(purged)
