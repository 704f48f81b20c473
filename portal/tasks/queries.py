"""Reading tasks: always within what the actor may see, keyset-paginated, one statement per page.

Visibility (the sites rule, plus one's own): holders of `sites:see-all` see every task; everyone
else the tasks at the sites they are assigned to, tasks with no site, and tasks assigned to them
or created by them. A task's dates are calendar dates at its site (the site's time zone), else
in the tenant's (`tenants.settings.timezone`, UTC when unset): "overdue" and "due this week" are
judged there, in SQL, so a list and the daily scan agree.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, replace
from datetime import date
from uuid import UUID

from flask import abort
from sqlalchemy import (
    Date,
    and_,
    cast,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import aliased

from ..accounts.models import User
from ..audit.models import AuditLog
from ..devices.models import Device
from ..extensions import db
from ..sites.models import Site, SiteAssignment
from ..sites.visibility import assigned_site_ids
from ..tenancy import TenantContext
from ..tenancy.models import Membership, MembershipStatus
from ..timezones import is_timezone
from ..timezones import zone as timezone_of
from .models import ACTIVE_STATUSES, Task, TaskComment, TaskPriority, TaskStatus

PAGE_SIZE = 50
BOARD_COLUMN = 50
COUNT_CAP = 10_000
SEARCH_MAX = 100
SORTS = {"due": "Due date", "priority": "Priority"}
# The status filter: the work still to do by default, or one status, or everything.
STATUS_FILTERS = {"": "Still to do", **{s.value: s.label.capitalize() for s in TaskStatus}, "all": "Any status"}


def tenant_timezone(tenant) -> str:
    """The tenant's calendar for tasks without a site: settings.timezone when it names a zone."""
    name = ((tenant.settings or {}).get("timezone") or "UTC") if tenant is not None else "UTC"
    return name if is_timezone(name) else "UTC"


def local_today(tenant_tz: str):
    """SQL: today's date at the task's site (its time zone), else in the tenant's. Needs Site joined."""
    return cast(func.timezone(func.coalesce(Site.timezone, literal(tenant_tz)), func.now()), Date)


def overdue_condition(tenant_tz: str):
    return and_(Task.status.in_(ACTIVE_STATUSES), Task.due_on < local_today(tenant_tz))


def may_see(ctx: TenantContext):
    """A condition keeping the tasks the actor may see."""
    if ctx.sees_all:
        return true()
    return or_(Task.site_id.is_(None), Task.site_id.in_(assigned_site_ids(ctx.tenant_id, ctx.user_id)),
               Task.assignee_id == ctx.user_id, Task.created_by == ctx.user_id)


def _uuid(value) -> UUID | None:
    try:
        return UUID(str(value))
    except (TypeError, ValueError):
        return None


def _enum(kind, value):
    try:
        return kind(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class ListState:
    """The list's filters, sort and page, read from (and written back to) the URL; values that
    make no sense are ignored, never an error."""
    q: str = ""
    mine: bool = False
    status: str = ""  # "", "all" or a TaskStatus value
    priority: TaskPriority | None = None
    site: UUID | None = None
    device: UUID | None = None
    overdue: bool = False
    week: bool = False
    sort: str = "due"
    after: str = ""
    before: str = ""

    @classmethod
    def from_args(cls, args) -> ListState:
        status = args.get("status", "")
        sort = args.get("sort", "due")
        return cls(q=" ".join(args.get("q", "").split())[:SEARCH_MAX], mine=args.get("mine") == "1",
                   status=status if status in STATUS_FILTERS else "",
                   priority=_enum(TaskPriority, args.get("priority", "")), site=_uuid(args.get("site", "")),
                   device=_uuid(args.get("device", "")), overdue=args.get("overdue") == "1",
                   week=args.get("week") == "1", sort=sort if sort in SORTS else "due",
                   after=args.get("after", "")[:500], before="" if args.get("after") else args.get("before", "")[:500])

    def args(self, **changes) -> dict:
        s = replace(self, **changes)
        out = {"q": s.q, "mine": "1" if s.mine else None, "status": s.status or None,
               "priority": s.priority and s.priority.value, "site": s.site, "device": s.device,
               "overdue": "1" if s.overdue else None, "week": "1" if s.week else None,
               "sort": s.sort if s.sort != "due" else None, "after": s.after, "before": s.before}
        return {k: str(v) for k, v in out.items() if v}

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.mine or self.status or self.priority or self.site or self.device
                    or self.overdue or self.week)


def tsquery_text(q: str) -> str | None:
    """Each word of `q` as a prefix, all required: 'lobby cam' finds 'Replace the lobby camera'."""
    words = re.findall(r"\w+", q.lower())[:8]
    return " & ".join(f"'{w}':*" for w in words) or None


Assignee = aliased(User, name="assignee")


def _base(ctx: TenantContext, *columns):
    tz = tenant_timezone(ctx.tenant)
    return (select(*columns)
            .select_from(Task)
            .outerjoin(Site, and_(Site.tenant_id == Task.tenant_id, Site.id == Task.site_id))
            .where(Task.tenant_id == ctx.tenant_id, may_see(ctx)), tz)


def _filters(stmt, ctx: TenantContext, state: ListState, tz: str, *, status: bool = True):
    if state.mine:
        stmt = stmt.where(Task.assignee_id == ctx.user_id)
    if status:
        if state.status == "":
            stmt = stmt.where(Task.status.in_(ACTIVE_STATUSES))
        elif state.status != "all":
            stmt = stmt.where(Task.status == TaskStatus(state.status))
    if state.priority:
        stmt = stmt.where(Task.priority == state.priority)
    if state.site:
        stmt = stmt.where(Task.site_id == state.site)
    if state.device:
        stmt = stmt.where(Task.device_id == state.device)
    if state.overdue:
        stmt = stmt.where(overdue_condition(tz))
    if state.week:
        today = local_today(tz)
        monday = cast(func.date_trunc("week", today), Date)
        stmt = stmt.where(Task.due_on >= monday, Task.due_on <= monday + 6)
    words = tsquery_text(state.q) if state.q else None
    if state.q:
        stmt = stmt.where(Task.search.op("@@")(func.to_tsquery(literal_column("'simple'::regconfig"), words))
                          if words else false())
    return stmt


def _keys(sort: str):
    """(column, descending) of the sort, ending with the id tie-breaker."""
    if sort == "priority":
        return [(Task.priority, True), (Task.due_key, False), (Task.id, False)]
    return [(Task.due_key, False), (Task.id, False)]


def _position(cursor: str, sort: str) -> tuple | None:
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if sort == "priority":
            return TaskPriority(plain[0]), date.fromisoformat(plain[1]), UUID(plain[2])
        return date.fromisoformat(plain[0]), UUID(plain[1])
    except (ValueError, TypeError, IndexError, KeyError, json.JSONDecodeError):
        return None


def cursor_of(row, sort: str) -> str:
    values = ([TaskPriority(row.priority).value] if sort == "priority" else []) + [row.due_key.isoformat(), str(row.id)]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _keyset(stmt, sort: str, position: tuple | None, reverse: bool):
    keys = _keys(sort)
    if position is not None:
        clauses = []
        for i, (column, descending) in enumerate(keys):
            later = column < position[i] if descending != reverse else column > position[i]
            clauses.append(and_(*[c == v for (c, _), v in zip(keys[:i], position[:i])], later))
        stmt = stmt.where(or_(*clauses))
    return stmt.order_by(*((c.desc() if descending != reverse else c.asc()) for c, descending in keys))


def _row_columns(tz: str):
    return (Task.id, Task.title, Task.status, Task.priority, Task.due_on, Task.due_key, Task.site_id,
            Task.device_id, Task.assignee_id, Site.name.label("site_name"), Device.name.label("device_name"),
            Assignee.name.label("assignee_name"), overdue_condition(tz).label("overdue"))


def _with_names(stmt):
    return (stmt.outerjoin(Device, and_(Device.tenant_id == Task.tenant_id, Device.id == Task.device_id))
            .outerjoin(Assignee, Assignee.id == Task.assignee_id))


@dataclass
class Page:
    rows: list
    state: ListState
    next_cursor: str | None = None
    prev_cursor: str | None = None

    @property
    def first_cursor(self) -> str:
        return cursor_of(self.rows[0], self.state.sort) if self.rows else ""


def task_page(ctx: TenantContext, state: ListState, page_size: int = PAGE_SIZE) -> Page:
    """One page after `after`, or the one before `before` (read backwards, then reversed)."""
    tz = tenant_timezone(ctx.tenant)
    backwards = bool(state.before and not state.after)
    position = _position(state.before if backwards else state.after, state.sort) \
        if (state.before or state.after) else None
    if position is None:
        backwards = False
    stmt, _ = _base(ctx, *_row_columns(tz))
    stmt = _keyset(_filters(_with_names(stmt), ctx, state, tz), state.sort, position, backwards).limit(page_size + 1)
    rows = db.session.execute(stmt).all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    if backwards:
        rows.reverse()
        if not rows:
            return task_page(ctx, replace(state, before=""), page_size)
        page = Page(rows, state, cursor_of(rows[-1], state.sort))
        page.prev_cursor = page.first_cursor if more else None
        return page
    page = Page(rows, state, cursor_of(rows[-1], state.sort) if more else None)
    page.prev_cursor = page.first_cursor if position is not None and rows else None
    return page


def count_matches(ctx: TenantContext, state: ListState, first: str = "") -> tuple[int, int | None]:
    """(matches, rows before the page starting at `first`), each exact up to COUNT_CAP."""
    tz = tenant_timezone(ctx.tenant)

    def counted(position, reverse):
        stmt, _ = _base(ctx, Task.id)
        stmt = _keyset(_filters(stmt, ctx, state, tz), state.sort, position, reverse).limit(COUNT_CAP + 1)
        return db.session.scalar(select(func.count()).select_from(stmt.subquery()))

    total = counted(None, False)
    position = _position(first, state.sort) if first else None
    if position is None:
        return total, 0 if not first else None
    return total, counted(position, True)


def board(ctx: TenantContext, state: ListState, per_column: int = BOARD_COLUMN) -> dict[TaskStatus, list]:
    """The first cards of each status column, in the list's sort: one statement, a branch per
    status, each an ordered index scan that stops after per_column + 1 rows."""
    tz = tenant_timezone(ctx.tenant)
    branches = []
    for i, status in enumerate(TaskStatus):
        stmt, _ = _base(ctx, *_row_columns(tz))
        stmt = _filters(_with_names(stmt), ctx, state, tz, status=False).where(Task.status == status)
        branch = _keyset(stmt, state.sort, None, False).limit(per_column + 1).subquery(f"column_{i}")
        branches.append(select(*branch.c))
    columns: dict[TaskStatus, list] = {s: [] for s in TaskStatus}
    for row in db.session.execute(union_all(*branches)).all():
        columns[TaskStatus(row.status)].append(row)
    return columns


def get_task(ctx: TenantContext, task_id: UUID, *, for_update: bool = False) -> Task | None:
    stmt = select(Task).where(Task.tenant_id == ctx.tenant_id, Task.id == task_id, may_see(ctx))
    if for_update:
        stmt = stmt.with_for_update(of=Task, key_share=True)
    return db.session.scalar(stmt)


def get_task_or_404(ctx: TenantContext, task_id: UUID, *, for_update: bool = False) -> Task:
    """A task of this tenant that the actor may see; anything else is the same 404."""
    return get_task(ctx, task_id, for_update=for_update) or abort(404, not_visible(ctx, "task"))


def not_visible(ctx: TenantContext, what: str) -> str:
    """The 404's words for a link that leads nowhere for this viewer (an old notification or email):
    the same whether the thing exists or not, so it tells nothing of what they may not see."""
    if ctx.sees_all:
        return f"There is no such {what} in {ctx.tenant.name}."
    return (f"There is no such {what} in {ctx.tenant.name} that you can see. You see only the sites you are "
            f"assigned to (and their devices and tasks): if you were removed from a site or the {what} was "
            f"reassigned, ask an owner or admin of {ctx.tenant.name}.")


def visible_tasks(ctx: TenantContext, ids, *, for_update: bool = False) -> list[Task]:
    stmt = select(Task).where(Task.tenant_id == ctx.tenant_id, Task.id.in_(list(ids)), may_see(ctx)).order_by(Task.id)
    if for_update:
        stmt = stmt.with_for_update(of=Task, key_share=True)
    return list(db.session.scalars(stmt))


def sees_site(tenant_id: UUID, user_id: UUID, site_id: UUID | None):
    """Whether a member may see a site: every site with sites:see-all, else their assigned ones."""
    if site_id is None:
        return True
    return bool(db.session.scalar(select(or_(
        func.user_has_permission(user_id, tenant_id, "sites", "see-all"),
        select(SiteAssignment.id).where(SiteAssignment.tenant_id == tenant_id, SiteAssignment.site_id == site_id,
                                        SiteAssignment.user_id == user_id).exists()))))


@dataclass
class Detail:
    """What the task page says around the task itself."""
    site: Site | None
    device_name: str | None
    assignee: User | None
    creator: User | None
    assignee_is_member: bool
    assignee_sees_site: bool
    viewer_sees_site: bool  # links to the site and the device only when they open for the viewer
    overdue: bool
    local_today: date
    zone: str  # the calendar of its due date: the site's time zone, else the tenant's


def detail(ctx: TenantContext, task: Task) -> Detail:
    # A task assigned to them at a site they no longer see: the site and its device are not theirs
    # to read (the database's site scope), so their names are None and the page says why.
    site = db.session.get(Site, (ctx.tenant_id, task.site_id)) if task.site_id else None
    device_name = db.session.scalar(select(Device.name).where(Device.tenant_id == ctx.tenant_id,
                                                              Device.id == task.device_id)) if task.device_id else None
    people = {u.id: u for u in db.session.scalars(select(User).where(
        User.id.in_([i for i in (task.assignee_id, task.created_by) if i])))}
    assignee = people.get(task.assignee_id)
    member = task.assignee_id is not None and db.session.scalar(select(Membership.id).where(
        Membership.tenant_id == ctx.tenant_id, Membership.user_id == task.assignee_id,
        Membership.status == MembershipStatus.ACTIVE)) is not None
    sees = task.assignee_id is None or not member or sees_site(ctx.tenant_id, task.assignee_id, task.site_id)
    viewer_sees = ctx.sees_all or (sees if task.assignee_id == ctx.user_id and member
                                   else sees_site(ctx.tenant_id, ctx.user_id, task.site_id))
    zone = site.timezone if site else tenant_timezone(ctx.tenant)
    today = _today_in(zone)
    overdue = TaskStatus(task.status).is_active and task.due_on is not None and task.due_on < today
    return Detail(site, device_name, assignee, people.get(task.created_by), member or task.assignee_id is None,
                  sees, viewer_sees, overdue, today, zone)


def _today_in(zone: str) -> date:
    from datetime import datetime
    return datetime.now(timezone_of(zone)).date()


def comments(ctx: TenantContext, task: Task, limit: int = 200) -> list:
    return db.session.execute(
        select(TaskComment.id, TaskComment.body, TaskComment.created_at, User.name.label("author_name"))
        .outerjoin(User, User.id == TaskComment.author_id)
        .where(TaskComment.tenant_id == ctx.tenant_id, TaskComment.task_id == task.id)
        .order_by(TaskComment.created_at, TaskComment.id).limit(limit)).all()


def history(ctx: TenantContext, task: Task, limit: int = 50) -> list:
    """The task's audit rows, newest first, with the actor's name."""
    return db.session.execute(
        select(AuditLog.action, AuditLog.before, AuditLog.after, AuditLog.created_at, User.name.label("actor_name"))
        .outerjoin(User, User.id == AuditLog.user_id)
        .where(AuditLog.tenant_id == ctx.tenant_id, AuditLog.resource_type == "task",
               AuditLog.resource_id == str(task.id))
        .order_by(AuditLog.seq.desc()).limit(limit)).all()


def open_tasks(ctx: TenantContext, *, site_id: UUID | None = None, device_id: UUID | None = None,
               limit: int = 10) -> tuple[list, int]:
    """The still-to-do tasks of a site or a device (its page's panel): the first by due date, and how many."""
    tz = tenant_timezone(ctx.tenant)
    stmt, _ = _base(ctx, *_row_columns(tz))
    stmt = _with_names(stmt).where(Task.status.in_(ACTIVE_STATUSES))
    stmt = stmt.where(Task.device_id == device_id) if device_id else stmt.where(Task.site_id == site_id)
    rows = db.session.execute(stmt.order_by(Task.due_key, Task.id).limit(limit + 1)).all()
    if len(rows) <= limit:
        return rows, len(rows)
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).limit(None).subquery()))
    return rows[:limit], total


def assignable_members(ctx: TenantContext) -> list:
    """Active members who may work on tasks (tasks:work), by name: the assignee choices."""
    return db.session.execute(
        select(User.id, User.name, User.email)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == ctx.tenant_id, Membership.status == MembershipStatus.ACTIVE,
               func.user_has_permission(User.id, ctx.tenant_id, "tasks", "work"))
        .order_by(func.lower(User.name), User.id)).all()


def site_devices(ctx: TenantContext, site_ids) -> list:
    """Devices of the sites offered in the form, for the device choice (bounded by those sites)."""
    if not site_ids:
        return []
    return db.session.execute(
        select(Device.id, Device.name, Device.site_id, Site.name.label("site_name"))
        .join(Site, and_(Site.tenant_id == Device.tenant_id, Site.id == Device.site_id))
        .where(Device.tenant_id == ctx.tenant_id, Device.site_id.in_(list(site_ids)))
        .order_by(Site.name, Device.name_key).limit(2000)).all()

