"""Scheduled: end agent tasks past their expiry as expired, tenant by tenant (each under its
own RLS context)."""
from __future__ import annotations

from sqlalchemy import select

from ..database.context import tenant_scope
from ..extensions import db
from ..jobs.engine import flask_app, jobs
from ..tenants.models import Tenant
from .services import expire_overdue


def expire_all() -> int:
    expired = 0
    for tenant_id in db.session.scalars(select(Tenant.id).order_by(Tenant.id)).all():
        with tenant_scope(db.session, tenant_id, actor="job:agents.expire"):
            expired += expire_overdue(tenant_id)
        db.session.commit()  # a job is its own edge: one transaction per tenant
    return expired


@jobs.periodic(cron="* * * * *", periodic_id="agents.expire_tasks")
@jobs.task(name="agents.expire_tasks", queueing_lock="agents.expire_tasks")
def expire_tasks(timestamp: int) -> int:
    app = flask_app()
    with app.app_context():
        expired = expire_all()
        if expired:
            app.logger.info("expired %s agent task(s)", expired)
        return expired
