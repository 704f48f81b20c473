"""Scheduled: remove expired access tokens and idempotency records, tenant by tenant (each
under its own RLS context). Expired rows are already refused or ignored; this bounds the tables."""
from __future__ import annotations

from sqlalchemy import select

from ..database.context import tenant_scope
from ..extensions import db
from ..jobs.engine import flask_app, jobs
from ..tenants.models import Tenant
from .services import prune_expired


@jobs.periodic(cron="23 * * * *", periodic_id="api.prune")
@jobs.task(name="api.prune", queueing_lock="api.prune")
def prune(timestamp: int) -> int:
    app = flask_app()
    with app.app_context():
        removed = 0
        for tenant_id in db.session.scalars(select(Tenant.id).order_by(Tenant.id)).all():
            with tenant_scope(db.session, tenant_id, actor="job:api.prune"):
                removed += prune_expired(tenant_id)
            db.session.commit()  # a job is its own edge: one transaction per tenant
        return removed
