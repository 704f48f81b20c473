"""What other areas' pages show of tasks, without importing this area: the site and device pages
call the `task_panel(...)` template global (registered by tasks.init_app) and include
tasks/_panel.html; a task's history reads its audit rows as sentences."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..tenancy import Permission, current_or_none
from . import queries


@dataclass
class Panel:
    rows: list
    total: int
    list_args: dict = field(default_factory=dict)
    new_args: dict = field(default_factory=dict)


def task_panel(*, site_id=None, device_id=None) -> Panel | None:
    """A site's or a device's open tasks for the current actor; None without tasks:view."""
    ctx = current_or_none()
    if ctx is None or not ctx.can(Permission.TASKS_VIEW):
        return None
    rows, total = queries.open_tasks(ctx, site_id=site_id, device_id=device_id)
    if device_id:
        return Panel(rows, total, {"device": str(device_id)}, {"site": str(site_id or ""), "device": str(device_id)})
    return Panel(rows, total, {"site": str(site_id)}, {"site": str(site_id)})


FIELDS = {"title": "title", "description": "description", "priority": "priority", "due_on": "due date",
          "site_id": "site", "device_id": "device", "assignee_id": "assignee"}


def describe(entry) -> str:
    """One audit row of a task as a sentence."""
    who = entry.actor_name or "The system"
    before, after = entry.before or {}, entry.after or {}
    if entry.action == "task.create":
        return f"{who} created the task"
    if entry.action == "task.status":
        return f"{who} changed the status from {str(before.get('status', '')).replace('_', ' ')} to " \
               f"{str(after.get('status', '')).replace('_', ' ')}"
    if entry.action == "task.assign":
        return f"{who} {'assigned the task' if after.get('assignee_id') else 'unassigned the task'}"
    if entry.action == "task.comment":
        return f"{who} commented"
    if entry.action == "task.update":
        changed = [label for key, label in FIELDS.items() if before.get(key) != after.get(key)]
        return f"{who} edited the {', '.join(changed) or 'task'}"
    return f"{who}: {entry.action}"
