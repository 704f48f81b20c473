"""Scheduled: prune each tenant's audit log past its retention, daily (the same as `flask audit
prune`, tenant by tenant, each under its own RLS context and chain lock)."""
from __future__ import annotations

from sqlalchemy import select

from ..database.context import tenant_scope
from ..extensions import db
from ..jobs.engine import flask_app, jobs
from ..tenants.models import Tenant
from . import retention


@jobs.periodic(cron="41 2 * * *", periodic_id="audit.prune")
@jobs.task(name="audit.prune", queueing_lock="audit.prune")
def prune_audit(timestamp: int) -> int:
    app = flask_app()
    with app.app_context():
        total = 0
        for tenant_id, settings in db.session.execute(select(Tenant.id, Tenant.settings).order_by(Tenant.id)).all():
            with tenant_scope(db.session, tenant_id, actor="job:audit.prune"):
                total += retention.prune(tenant_id, settings)
            db.session.commit()  # a job is its own edge: one transaction per tenant
        if total:
            app.logger.info("pruned %s audit row(s) past retention", total)
        return total
