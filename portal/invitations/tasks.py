"""Scheduled: expire overdue invitations, tenant by tenant (each under its own RLS context)."""
from __future__ import annotations

from sqlalchemy import select

from ..database.context import tenant_scope
from ..extensions import db
from ..jobs.engine import flask_app, jobs
from ..tenants.models import Tenant
from .services import expire_overdue


@jobs.periodic(cron="*/15 * * * *", periodic_id="invitations.expire")
@jobs.task(name="invitations.expire", queueing_lock="invitations.expire")
def expire_invitations(timestamp: int) -> int:
    app = flask_app()
    with app.app_context():
        expired = 0
        for tenant_id in db.session.scalars(select(Tenant.id).order_by(Tenant.id)).all():
            with tenant_scope(db.session, tenant_id, actor="job:invitations.expire"):
                expired += expire_overdue(tenant_id)
            db.session.commit()  # a job is its own edge: one transaction per tenant
        if expired:
            app.logger.info("expired %s invitation(s)", expired)
        return expired
