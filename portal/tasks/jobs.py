"""Scheduled: tell people about tasks due tomorrow and tasks overdue, once per task and due date.

"Tomorrow" and "overdue" are judged by the calendar of each task's site (its time zone), else the
tenant's. The scan runs every hour so that each time zone's new day is seen within the hour;
each notice is still sent once: the task records the due date it was sent for
(due_soon_noticed_for, overdue_noticed_for), so a task whose date is moved is told about again.
Tenant by tenant, each under its own RLS context, one transaction per tenant.
"""
from __future__ import annotations

from sqlalchemy import and_, or_, select

from ..database.context import tenant_scope
from ..extensions import db
from ..jobs.engine import flask_app, jobs
from ..sites.models import Site
from ..tenants.models import Tenant
from . import events
from .models import ACTIVE_STATUSES, Task
from .queries import local_today, tenant_timezone

BATCH = 1000


def scan_tenant(tenant: Tenant) -> list[events.Notice]:
    """The due-tomorrow and overdue notices of one tenant not sent yet; marks them sent. The
    caller has entered the tenant's RLS scope and commits."""
    today = local_today(tenant_timezone(tenant))
    due_soon = and_(Task.due_on == today + 1, Task.due_soon_noticed_for.is_distinct_from(Task.due_on))
    late = and_(Task.due_on < today, Task.overdue_noticed_for.is_distinct_from(Task.due_on))
    rows = db.session.execute(
        select(Task, today.label("today"), due_soon.label("due_soon"))
        .outerjoin(Site, and_(Site.tenant_id == Task.tenant_id, Site.id == Task.site_id))
        .where(Task.tenant_id == tenant.id, Task.status.in_(ACTIVE_STATUSES), Task.due_on.is_not(None),
               or_(due_soon, late))
        .order_by(Task.due_on, Task.id).limit(BATCH)
        .with_for_update(of=Task, skip_locked=True)).all()
    notices = []
    for task, local, is_due_soon in rows:
        if is_due_soon:
            notice = events.task_due_tomorrow(tenant, task, local)
            task.due_soon_noticed_for = task.due_on
        else:
            notice = events.task_overdue(tenant, task, local)
            task.overdue_noticed_for = task.due_on
        if notice is not None:
            notices.append(events.publish(notice))
    db.session.flush()  # inside the tenant's RLS scope: the caller commits after leaving it
    return notices


@jobs.periodic(cron="7 * * * *", periodic_id="tasks.due_scan")
@jobs.task(name="tasks.due_scan", queueing_lock="tasks.due_scan")
def due_scan(timestamp: int) -> int:
    app = flask_app()
    with app.app_context():
        sent = 0
        tenants = db.session.scalars(select(Tenant).where(Tenant.is_usable).order_by(Tenant.id)).all()
        for tenant in tenants:
            with tenant_scope(db.session, tenant.id, actor="job:tasks.due_scan"):
                sent += len(scan_tenant(tenant))
            db.session.commit()  # a job is its own edge: one transaction per tenant
        if sent:
            app.logger.info("task notices: %s", sent)
        return sent
