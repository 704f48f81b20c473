"""Every point where a task event should tell someone, in one module.

Each function below computes who is concerned (active members of the tenant, never the person
who acted) and the message's parameters, and returns a `Notice` (or None when nobody is to be
told). The services and the daily scan (jobs.py) hand each Notice to `publish()`.

Each Notice is published inside the transaction of the change that caused it (a request's, or
the scan's per-tenant one), so a notification exists exactly when its change was committed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

from sqlalchemy import select

from ..accounts.models import User
from ..extensions import db
from ..notifications import notify
from ..tenancy.models import Membership, MembershipStatus

# The kinds, as the notifications half names them (one e-mail preference per kind).
ASSIGNED = "task.assigned"
COMMENTED = "task.commented"
COMPLETED = "task.completed"
DUE_TOMORROW = "task.due_tomorrow"
OVERDUE = "task.overdue"


@dataclass(frozen=True)
class Notice:
    tenant_id: UUID
    recipients: list[UUID]
    kind: str
    params: dict = field(default_factory=dict)
    link: str = ""


def publish(notice: Notice | None) -> Notice | None:
    """The one place a Notice leaves this module: into the recipients' bells and mail, in the
    transaction of the change that caused it."""
    if notice is not None:
        notify(notice.tenant_id, notice.recipients, notice.kind, notice.params, notice.link)
    return notice


def task_link(tenant_slug: str, task_id: UUID) -> str:
    """The task's page (also outside a request: the daily scan has no url_for)."""
    return f"/t/{tenant_slug}/tasks/{task_id}"


def _active_members(tenant_id: UUID, user_ids) -> list[UUID]:
    """Those of `user_ids` who are still active members of the tenant, in the order given."""
    wanted = [u for u in dict.fromkeys(user_ids) if u is not None]
    if not wanted:
        return []
    active = set(db.session.scalars(select(Membership.user_id).where(
        Membership.tenant_id == tenant_id, Membership.user_id.in_(wanted),
        Membership.status == MembershipStatus.ACTIVE)))
    return [u for u in wanted if u in active]


def _name(user_id: UUID | None) -> str:
    if user_id is None:
        return "The system"
    return db.session.scalar(select(User.name).where(User.id == user_id)) or "Someone"


def _params(tenant, task, **more) -> dict:
    return {"task_id": str(task.id), "title": task.title, "tenant": tenant.name, "tenant_slug": tenant.slug,
            "due_on": task.due_on.isoformat() if task.due_on else None, **more}


def _notice(tenant, task, kind: str, recipients: list[UUID], **params) -> Notice | None:
    if not recipients:
        return None
    return Notice(tenant.id, recipients, kind, _params(tenant, task, **params), task_link(tenant.slug, task.id))


def task_assigned(tenant, task, actor_id: UUID | None) -> Notice | None:
    """A task was assigned to someone: tell the new assignee (not when they assigned it to themselves)."""
    people = [task.assignee_id] if task.assignee_id != actor_id else []
    return _notice(tenant, task, ASSIGNED, _active_members(tenant.id, people), actor=_name(actor_id))


def task_commented(tenant, task, comment, actor_id: UUID | None) -> Notice | None:
    """A comment on a task: tell its assignee and its creator, but not the commenter."""
    people = [u for u in (task.assignee_id, task.created_by) if u != actor_id]
    excerpt = quoted(comment.body)
    return _notice(tenant, task, COMMENTED, _active_members(tenant.id, people), actor=_name(actor_id),
                   comment_id=str(comment.id), excerpt=excerpt)


QUOTE_MAX = 1000  # characters of a comment an email quotes: a long comment is read on its page


def quoted(body: str, limit: int = QUOTE_MAX) -> str:
    """The comment as an email quotes it: whole when short, else cut at a word and marked."""
    body = body.strip()
    if len(body) <= limit:
        return body
    cut = body[:limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.8 else cut).rstrip() + "…"


def task_completed(tenant, task, actor_id: UUID | None) -> Notice | None:
    """A task's status became done: tell its creator (unless they closed it themselves)."""
    people = [task.created_by] if task.created_by != actor_id else []
    return _notice(tenant, task, COMPLETED, _active_members(tenant.id, people), actor=_name(actor_id))


def _concerned(task) -> list[UUID]:
    """Who answers for a task's date: its assignee, else (unassigned) its creator."""
    return [task.assignee_id] if task.assignee_id else [task.created_by]


def task_due_tomorrow(tenant, task, today: date) -> Notice | None:
    """The daily scan: the task is due tomorrow at its site (or in the tenant's time zone)."""
    return _notice(tenant, task, DUE_TOMORROW, _active_members(tenant.id, _concerned(task)),
                   today=today.isoformat())


def task_overdue(tenant, task, today: date) -> Notice | None:
    """The daily scan: the task's due date has passed and it is still to do."""
    days = (today - task.due_on).days if task.due_on else 0
    return _notice(tenant, task, OVERDUE, _active_members(tenant.id, _concerned(task)),
                   today=today.isoformat(), days_late=days)
