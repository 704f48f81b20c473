"""Task rules: create, edit, assign, change status, comment.

Services take the request's TenantContext, read within what the actor may see, write one audit
row per task changed (before/after) in the same transaction, hand what concerns others to
events.py, and never commit.

- Sites: a task is created (or moved) only at a site the actor sees, or at none; not at an
  archived site. Its device must be one of that site's (the database refuses anything else too).
- Assignee: an active member who may work on tasks (tasks:work) and who sees the task's site.
  When a site assignment is later taken away the task keeps its assignee, and its page says
  the assignee can no longer see the site.
- Status and comments (tasks:work): on tasks assigned to the actor; on any task they see when
  they may also edit tasks (tasks:write). completed_at is set when a task becomes done and
  cleared when it leaves done.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from uuid import UUID

from sqlalchemy import func, select

from .. import audit
from ..accounts.models import User
from ..devices.models import Device
from ..events import emit as emit_event
from ..extensions import db
from ..rules import RuleViolation
from ..sites.models import Site
from ..sites.queries import get_site
from ..tenancy import Permission, TenantContext
from ..tenancy.models import Membership, MembershipStatus
from . import events
from .models import (
    COMMENT_MAX,
    DESCRIPTION_MAX,
    TITLE_MAX,
    Task,
    TaskComment,
    TaskPriority,
    TaskStatus,
)
from .queries import sees_site

BULK_MAX = 200
EARLIEST_DUE, LATEST_DUE = date(2000, 1, 1), date(2100, 12, 31)


@dataclass
class TaskData:
    title: str
    description: str = ""
    priority: TaskPriority = TaskPriority.MEDIUM
    due_on: date | None = None
    site_id: UUID | None = None
    device_id: UUID | None = None
    assignee_id: UUID | None = None


def snapshot(task: Task) -> dict:
    return {"title": task.title, "description": task.description, "status": TaskStatus(task.status).value,
            "priority": TaskPriority(task.priority).value, "due_on": task.due_on.isoformat() if task.due_on else None,
            "site_id": str(task.site_id) if task.site_id else None,
            "device_id": str(task.device_id) if task.device_id else None,
            "assignee_id": str(task.assignee_id) if task.assignee_id else None}


def may_work_on(ctx: TenantContext, task: Task) -> bool:
    """Change its status or comment on it."""
    return ctx.can(Permission.TASKS_WORK) and (task.assignee_id == ctx.user_id or ctx.can(Permission.TASKS_WRITE))


def _clean(data: TaskData) -> TaskData:
    title = " ".join((data.title or "").split())
    if not title:
        raise RuleViolation("Give the task a title.", field="title")
    if len(title) > TITLE_MAX:
        raise RuleViolation(f"The title is longer than {TITLE_MAX} characters.", field="title")
    description = (data.description or "").replace("\r\n", "\n").strip()
    if len(description) > DESCRIPTION_MAX:
        raise RuleViolation(f"The description is longer than {DESCRIPTION_MAX:,} characters.", field="description")
    if data.due_on is not None and not EARLIEST_DUE <= data.due_on <= LATEST_DUE:
        raise RuleViolation(f"Choose a due date between {EARLIEST_DUE:%Y} and {LATEST_DUE:%Y}.", field="due_on")
    if data.device_id is not None and data.site_id is None:
        raise RuleViolation("Choose the device's site too (or no device).", field="device_id")
    return TaskData(title, description, TaskPriority(data.priority), data.due_on, data.site_id, data.device_id,
                    data.assignee_id)


def _site(ctx: TenantContext, site_id: UUID | None, current: UUID | None = None) -> Site | None:
    """A site tasks may be put at: one the actor sees and not archived (an unchanged site stays)."""
    if site_id is None:
        return None
    if site_id == current:
        return db.session.get(Site, (ctx.tenant_id, site_id))
    site = get_site(ctx, site_id)
    if site is None:
        raise RuleViolation("Choose one of your sites, or no site.", field="site_id")
    if site.archived_at is not None:
        raise RuleViolation(f"{site.name} is archived: restore it before adding tasks there.", field="site_id")
    return site


def _check_device(ctx: TenantContext, site: Site | None, device_id: UUID | None) -> None:
    if device_id is None:
        return
    at = db.session.scalar(select(Device.site_id).where(Device.tenant_id == ctx.tenant_id, Device.id == device_id))
    if at is None or site is None or at != site.id:
        where = site.name if site else "the chosen site"
        raise RuleViolation(f"That device is not at {where}: choose one of its devices, or no device.",
                            field="device_id")


def check_assignee(ctx: TenantContext, user_id: UUID | None, site: Site | None) -> None:
    """The assignee works here (an active member with tasks:work) and sees the task's site."""
    if user_id is None:
        return
    row = db.session.execute(
        select(User.name, func.user_has_permission(User.id, ctx.tenant_id, "tasks", "work"))
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == ctx.tenant_id, Membership.user_id == user_id,
               Membership.status == MembershipStatus.ACTIVE)).first()
    if row is None:
        raise RuleViolation("Only active members of this organization can be assigned tasks.", field="assignee_id")
    name, works = row
    if not works:
        raise RuleViolation(f"The role of {name} does not allow working on tasks: choose someone else.",
                            field="assignee_id")
    if site is not None and not sees_site(ctx.tenant_id, user_id, site.id):
        raise RuleViolation(f"{name} cannot see {site.name}: assign them to the site first, or choose someone "
                            "who can.", field="assignee_id")


def _require(ctx: TenantContext, permission: Permission, what: str) -> None:
    if not ctx.can(permission):
        raise RuleViolation(f"Your role does not allow {what}.")


def create_task(ctx: TenantContext, data: TaskData) -> Task:
    _require(ctx, Permission.TASKS_WRITE, "creating tasks")
    data = _clean(data)
    site = _site(ctx, data.site_id)
    _check_device(ctx, site, data.device_id)
    check_assignee(ctx, data.assignee_id, site)
    task = Task(tenant_id=ctx.tenant_id, title=data.title, description=data.description, priority=data.priority,
                due_on=data.due_on, site_id=data.site_id, device_id=data.device_id, assignee_id=data.assignee_id,
                created_by=ctx.user_id, status=TaskStatus.OPEN)
    db.session.add(task)
    db.session.flush()  # the audit row and the notice name the new task's id
    audit.record(ctx.tenant_id, ctx.user_id, "task.create", "task", task.id, after=snapshot(task))
    emit_event(ctx.tenant_id, "task.created", {
        "task_id": task.id, "title": task.title, "site_id": task.site_id, "device_id": task.device_id,
        "assignee_id": task.assignee_id, "priority": task.priority, "due_on": task.due_on})
    if task.assignee_id:
        events.publish(events.task_assigned(ctx.tenant, task, ctx.user_id))
    return task


def update_task(ctx: TenantContext, task: Task, data: TaskData) -> Task:
    _require(ctx, Permission.TASKS_WRITE, "editing tasks")
    data = _clean(data)
    site = _site(ctx, data.site_id, current=task.site_id)
    _check_device(ctx, site, data.device_id)
    if data.assignee_id != task.assignee_id or data.site_id != task.site_id:
        check_assignee(ctx, data.assignee_id, site)
    before = snapshot(task)
    previous_assignee = task.assignee_id
    task.title, task.description, task.priority, task.due_on = data.title, data.description, data.priority, data.due_on
    task.site_id, task.device_id, task.assignee_id = data.site_id, data.device_id, data.assignee_id
    after = snapshot(task)
    if after != before:
        audit.record(ctx.tenant_id, ctx.user_id, "task.update", "task", task.id, before=before, after=after)
    if task.assignee_id and task.assignee_id != previous_assignee:
        events.publish(events.task_assigned(ctx.tenant, task, ctx.user_id))
    return task


def change_status(ctx: TenantContext, tasks: list[Task], status: TaskStatus) -> int:
    """Set the status of `tasks` (already limited to what the actor sees): all or none."""
    status = TaskStatus(status)
    refused = [t for t in tasks if not may_work_on(ctx, t)]
    if refused:
        raise RuleViolation(f"You may change the status only of tasks assigned to you (‘{refused[0].title}’ is not).",
                            field="status")
    now = datetime.now(UTC)
    changed = 0
    for task in tasks:
        if task.status == status:
            continue
        before = snapshot(task) | {"completed_at": task.completed_at.isoformat() if task.completed_at else None}
        task.status = status
        task.completed_at = now if status == TaskStatus.DONE else None
        audit.record(ctx.tenant_id, ctx.user_id, "task.status", "task", task.id, before=before,
                     after=snapshot(task) | {"completed_at": task.completed_at.isoformat() if task.completed_at else None})
        if status == TaskStatus.DONE:
            events.publish(events.task_completed(ctx.tenant, task, ctx.user_id))
            emit_event(ctx.tenant_id, "task.completed", {"task_id": task.id, "title": task.title,
                                                         "completed_by": ctx.user_id})
        changed += 1
    return changed


def assign(ctx: TenantContext, tasks: list[Task], assignee_id: UUID | None) -> int:
    """Give `tasks` to one member (or to nobody): each task's site must be one they see."""
    _require(ctx, Permission.TASKS_WRITE, "assigning tasks")
    sites = {s.id: s for s in db.session.scalars(select(Site).where(
        Site.tenant_id == ctx.tenant_id, Site.id.in_({t.site_id for t in tasks if t.site_id})))}
    for site_id in {t.site_id for t in tasks}:
        check_assignee(ctx, assignee_id, sites.get(site_id))
    changed = 0
    for task in tasks:
        if task.assignee_id == assignee_id:
            continue
        before = snapshot(task)
        task.assignee_id = assignee_id
        audit.record(ctx.tenant_id, ctx.user_id, "task.assign", "task", task.id, before=before, after=snapshot(task))
        if assignee_id:
            events.publish(events.task_assigned(ctx.tenant, task, ctx.user_id))
        changed += 1
    return changed


def add_comment(ctx: TenantContext, task: Task, body: str) -> TaskComment:
    if not may_work_on(ctx, task):
        raise RuleViolation("You may comment only on tasks assigned to you.", field="body")
    body = (body or "").replace("\r\n", "\n").strip()
    if not body:
        raise RuleViolation("Write a comment first.", field="body")
    if len(body) > COMMENT_MAX:
        raise RuleViolation(f"A comment is at most {COMMENT_MAX:,} characters.", field="body")
    comment = TaskComment(tenant_id=ctx.tenant_id, task_id=task.id, author_id=ctx.user_id, body=body)
    db.session.add(comment)
    db.session.flush()  # the audit row names the comment
    audit.record(ctx.tenant_id, ctx.user_id, "task.comment", "task", task.id,
                 after={"title": task.title, "comment_id": str(comment.id),
                        "excerpt": body if len(body) <= 200 else body[:199] + "…"})
    events.publish(events.task_commented(ctx.tenant, task, comment, ctx.user_id))
    return comment

