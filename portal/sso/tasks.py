"""The worker re-checks every claimed domain's DNS record (issue 25): a verified domain whose
record is gone stops being verified, and its organization's owners are told."""
from __future__ import annotations

from sqlalchemy import select

from ..database.context import tenant_scope
from ..extensions import db
from ..jobs.engine import flask_app, jobs
from ..tenants.models import Tenant
from . import domains


def recheck_all() -> int:
    """One pass over every usable tenant, one transaction each (a job is its own edge)."""
    changed = 0
    tenants = db.session.scalars(select(Tenant).where(Tenant.is_usable).order_by(Tenant.id)).all()
    for tenant in tenants:
        with tenant_scope(db.session, tenant.id, actor="job:sso.recheck"):
            changed += domains.recheck_tenant(tenant)
        db.session.commit()
    return changed


@jobs.periodic(cron="17 3 * * *", periodic_id="sso.recheck_domains")
@jobs.task(name="sso.recheck_domains", queueing_lock="sso.recheck_domains")
def recheck_domains(timestamp: int) -> int:
    app = flask_app()
    with app.app_context():
        changed = recheck_all()
        if changed:
            app.logger.info("verified domains changed state: %s", changed)
        return changed
