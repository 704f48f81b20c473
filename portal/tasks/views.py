"""/t/<slug>/tasks: the list and the board (each one URL, page or htmx fragment), the count,
new/edit, each task's page, status changes, comments and bulk actions."""
from __future__ import annotations

from urllib.parse import urlsplit
from uuid import UUID

from flask import (
    Response,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from .. import ui
from ..extensions import db, htmx
from ..rules import RuleViolation
from ..sites.models import Site
from ..sites.queries import visible_sites
from ..tenancy import Permission, current, requires, tenant_blueprint
from . import queries, services
from .forms import BulkForm, CommentForm, StatusForm, TaskForm
from .models import TaskPriority, TaskStatus

bp = tenant_blueprint("tasks", __name__, "/tasks")


def _local(target: str | None, fallback: str) -> str:
    """Only a path of this tenant's tasks: never redirect elsewhere after an action."""
    parts = urlsplit(target or "")
    prefix = url_for(".index")
    if target and not parts.scheme and not parts.netloc and target.startswith(prefix) and "\\" not in target:
        return target
    return fallback


def _listing(template: str, fragment: str, **context):
    state = queries.ListState.from_args(request.args)
    ctx = current()
    context = {"state": state, **context}
    if htmx and not htmx.history_restore_request:
        response = Response(render_template(fragment, **context))
        response.headers["HX-Push-Url"] = url_for(request.endpoint, **state.args())
        return response
    return render_template(template, sites=visible_sites(ctx), statuses=queries.STATUS_FILTERS,
                           priorities=list(TaskPriority), sorts=queries.SORTS,
                           members=queries.assignable_members(ctx) if ctx.can(Permission.TASKS_WRITE) else [],
                           all_statuses=list(TaskStatus), **context)


@bp.get("/")
@requires(Permission.TASKS_VIEW)
def index():
    state = queries.ListState.from_args(request.args)
    return _listing("tasks/index.html", "tasks/_rows.html", page=queries.task_page(current(), state, queries.PAGE_SIZE))


@bp.get("/board")
@requires(Permission.TASKS_VIEW)
def board():
    state = queries.ListState.from_args(request.args)
    return _listing("tasks/board.html", "tasks/_board.html", columns=queries.board(current(), state),
                    per_column=queries.BOARD_COLUMN)


@bp.get("/count")
@requires(Permission.TASKS_VIEW)
def count():
    """"51–100 of 1,234", fetched by the list after its rows (the list request stays one statement)."""
    state = queries.ListState.from_args(request.args)
    total, before = queries.count_matches(current(), state, request.args.get("first", "")[:500])
    try:
        shown = max(0, min(int(request.args.get("shown", "0")), queries.PAGE_SIZE))
    except ValueError:
        shown = 0
    return render_template("tasks/_count.html", total=total, before=before, shown=shown, cap=queries.COUNT_CAP)


def _choices(ctx, task=None) -> dict:
    sites = visible_sites(ctx)
    if task is not None and task.site_id and all(s.id != task.site_id for s in sites):
        current_site = db.session.get(Site, (ctx.tenant_id, task.site_id))
        sites = [current_site, *sites] if current_site else sites
    return {"sites": sites, "devices": queries.site_devices(ctx, [s.id for s in sites]),
            "members": queries.assignable_members(ctx)}


def _form_page(form: TaskForm, task=None, status: int = 200):
    return render_template("tasks/form.html", form=form, task=task), status


def _refused(form: TaskForm, exc: RuleViolation):
    db.session.rollback()
    getattr(form, exc.field or "title", form.title).errors.append(exc.message)


@bp.route("/new", methods=["GET", "POST"])
@requires(Permission.TASKS_WRITE)
def create():
    ctx = current()
    form = TaskForm(**_choices(ctx))
    if request.method == "GET":
        form.site_id.data = request.args.get("site", "")[:64]
        form.device_id.data = request.args.get("device", "")[:64]
    if not form.validate_on_submit():
        return _form_page(form, status=422 if request.method == "POST" else 200)
    try:
        task = services.create_task(ctx, form.to_data())
    except RuleViolation as exc:
        _refused(form, exc)
        return _form_page(form, status=422)
    flash(f"Created ‘{task.title}’.", "success")
    return redirect(url_for(".show", task_id=task.id), 303)


def _task_or_404(task_id: UUID, *, for_update: bool = False):
    return queries.get_task_or_404(current(), task_id, for_update=for_update)


def _task_page(task, comment_form=None):
    ctx = current()
    return render_template("tasks/show.html", task=task, info=queries.detail(ctx, task),
                           comments=queries.comments(ctx, task), history=queries.history(ctx, task),
                           status_form=StatusForm(status=TaskStatus(task.status).value),
                           comment_form=comment_form or CommentForm(), may_work=services.may_work_on(ctx, task))


@bp.get("/<uuid:task_id>")
@requires(Permission.TASKS_VIEW)
def show(task_id: UUID):
    return _task_page(_task_or_404(task_id))


@bp.route("/<uuid:task_id>/edit", methods=["GET", "POST"])
@requires(Permission.TASKS_WRITE)
def edit(task_id: UUID):
    ctx = current()
    task = _task_or_404(task_id, for_update=request.method == "POST")
    choices = _choices(ctx, task)
    form = TaskForm(**choices) if request.method == "POST" else TaskForm.for_task(task, **choices)
    if not form.validate_on_submit():
        return _form_page(form, task, 422 if request.method == "POST" else 200)
    try:
        services.update_task(ctx, task, form.to_data())
    except RuleViolation as exc:
        _refused(form, exc)
        return _form_page(form, _task_or_404(task_id), 422)
    flash(f"Saved ‘{task.title}’.", "success")
    return redirect(url_for(".show", task_id=task_id), 303)


@bp.post("/<uuid:task_id>/status")
@requires(Permission.TASKS_WORK)
def status(task_id: UUID):
    """A status change from the task page, the list or the board: htmx swaps the status panel
    and raises task-changed (the board and the history refresh themselves); without JavaScript
    the form posts and comes back to where it was."""
    ctx = current()
    task = _task_or_404(task_id, for_update=True)
    form = StatusForm()
    if not form.validate():
        abort(400, "Choose a status.")
    back = _local(form.next.data, url_for(".show", task_id=task_id))
    error = None
    try:
        services.change_status(ctx, [task], TaskStatus(form.status.data))
    except RuleViolation as exc:
        db.session.rollback()
        task = _task_or_404(task_id)
        error = exc.message
    label = TaskStatus(task.status).label
    if htmx:
        response = make_response(render_template(
            "tasks/_status.html", task=task, error=error, may_work=services.may_work_on(ctx, task)),
            422 if error else 200)
        if not error:
            ui.toast(response, f"‘{task.title}’ is now {label}.")
            ui.trigger(response, "task-changed")
        return response
    flash(error or f"‘{task.title}’ is now {label}.", "error" if error else "success")
    return redirect(back, 303)


@bp.post("/<uuid:task_id>/comments")
@requires(Permission.TASKS_WORK)
def comment(task_id: UUID):
    task = _task_or_404(task_id)
    form = CommentForm()
    if not form.validate():
        return _task_page(task, form), 422
    try:
        services.add_comment(current(), task, form.body.data)
    except RuleViolation as exc:
        db.session.rollback()
        form.body.errors.append(exc.message)
        return _task_page(_task_or_404(task_id), form), 422
    flash("Comment added.", "success")
    return redirect(url_for(".show", task_id=task_id) + "#comments", 303)


def _selection(form: BulkForm) -> list[UUID]:
    ids = []
    for value in form.ids.data or []:
        try:
            ids.append(UUID(value))
        except ValueError:
            abort(400, "The selection is not valid.")
    return list(set(ids))


def _bulk(action, done: str):
    """Run one change on the selected tasks: all of them in one transaction, or none. Refusals
    keep the list as it was (its filters, and with htmx the selection): see ui.back_to_list."""
    ctx = current()
    form = BulkForm()
    if not form.validate():
        abort(400, "The form expired: reload the page and try again.")
    back = _local(form.next.data, url_for(".index"))
    ids = _selection(form)
    if not ids:
        return ui.back_to_list(back, "Select at least one task.", "error")
    if len(ids) > services.BULK_MAX:
        return ui.back_to_list(back, f"Select at most {services.BULK_MAX} tasks at a time.", "error")
    tasks = queries.visible_tasks(ctx, ids, for_update=True)
    if len(tasks) != len(ids):
        return ui.back_to_list(back, "Some of the selected tasks no longer exist or are not yours to see; "
                                     "nothing was changed.", "error")
    try:
        changed = action(ctx, tasks, form)
    except RuleViolation as exc:
        db.session.rollback()
        return ui.back_to_list(back, exc.message + " Nothing was changed.", "error")
    return ui.back_to_list(back, done.format(n=changed, s="" if changed == 1 else "s"))


@bp.post("/bulk/status")
@requires(Permission.TASKS_WORK)
def bulk_status():
    def action(ctx, tasks, form):
        try:
            status = TaskStatus(form.status.data or "")
        except ValueError:
            raise RuleViolation("Choose a status.") from None
        return services.change_status(ctx, tasks, status)
    return _bulk(action, "Changed the status of {n} task{s}.")


@bp.post("/bulk/assign")
@requires(Permission.TASKS_WRITE)
def bulk_assign():
    def action(ctx, tasks, form):
        value = form.assignee_id.data or ""
        if value == "":
            raise RuleViolation("Choose someone to assign the tasks to.")
        try:
            assignee = None if value == "nobody" else UUID(value)
        except ValueError:
            raise RuleViolation("Choose someone to assign the tasks to.") from None
        return services.assign(ctx, tasks, assignee)
    return _bulk(action, "Assigned {n} task{s}.")
