"""/t/<slug>/devices: the list (page or htmx fragment, one URL), CSV export and import,
bulk actions, and each device's page, edit, status, move and decommission."""
from __future__ import annotations

from datetime import date
from uuid import UUID

from flask import (Response, abort, flash, make_response, redirect, render_template, request, stream_with_context,
                   url_for)
from werkzeug.exceptions import RequestEntityTooLarge

from .. import ui
from ..database import replica
from ..errors import render_error
from ..extensions import db, htmx
from ..rules import RuleViolation
from ..sites.queries import visible_sites
from ..tenancy import Permission, can, current, requires, tenant_blueprint
from . import bulk_actions, csvio, history, page_sections, queries, services
from .forms import BulkForm, DeviceForm, ImportForm, MoveForm, StatusForm
from .models import DeviceStatus, DeviceType

bp = tenant_blueprint("devices", __name__, "/devices")


@bp.url_value_preprocessor
def _bound_uploads(endpoint, values):
    # Runs before CSRFProtect reads the form: an import's body is refused past this size
    # instead of being spooled to disk first.
    if endpoint == "devices.import_csv":
        request.max_content_length = csvio.MAX_BYTES + 64 * 1024


def _list_url(state: queries.ListState, **changes) -> str:
    return url_for(".index", **state.args(**changes))


# The filter and bulk menus' (value, label) rows (ui.options).
MENU_TYPES = tuple((t.value, t.value) for t in DeviceType)
MENU_STATUSES = tuple((s.value, s.value) for s in DeviceStatus)


@bp.get("/")
@requires(Permission.DEVICES_VIEW)
def index():
    state = queries.ListState.from_args(request.args)
    ctx = current()
    page = queries.device_page(ctx, state)
    if htmx and not htmx.history_restore_request:
        response = Response(render_template("devices/_device_rows.html", page=page))
        response.headers["HX-Push-Url"] = _list_url(state)  # the canonical URL: no empty parameters
        return response
    room, sites = services.room_and_sites(ctx, with_room=ctx.can(Permission.DEVICES_WRITE))
    extra = [html for html in (action(ctx) for action in bulk_actions) if html]
    return render_template("devices/index.html", page=page, state=state, sites=sites,
                           types=MENU_TYPES, statuses=MENU_STATUSES, sorts=queries.SORTS, room=room,
                           bulk_actions=extra)


@bp.get("/count")
@requires(Permission.DEVICES_VIEW)
def count():
    """The list's position and number of matches ("51–100 of 1,234"), fetched by the list after
    its rows (htmx) so the list request stays at two statements."""
    state = queries.ListState.from_args(request.args)
    total, before = queries.count_matches(current(), state, request.args.get("first", "")[:500])
    try:
        shown = max(0, min(int(request.args.get("shown", "0")), queries.PAGE_SIZE))
    except ValueError:
        shown = 0
    return render_template("devices/_count.html", total=total, before=before, shown=shown,
                           cap=queries.COUNT_CAP)


@bp.get("/export.csv")
@requires(Permission.DEVICES_VIEW)
def export():
    state = queries.ListState.from_args(request.args)
    filename = f"devices-{current().tenant.slug}-{date.today():%Y%m%d}.csv"
    lines = csvio.export_lines(current(), state)
    return Response(stream_with_context(replica.streamed(lines)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})


def _form_page(form: DeviceForm, device=None, status: int = 200):
    return render_template("devices/form.html", form=form, device=device), status


@bp.route("/new", methods=["GET", "POST"])
@requires(Permission.DEVICES_WRITE)
def create():
    ctx = current()
    sites = visible_sites(ctx)
    if not sites:  # a device belongs to a site: an empty menu would be a dead end
        return render_template("devices/form.html", form=None, device=None, no_sites=True), \
            422 if request.method == "POST" else 200
    form = DeviceForm(sites=sites)
    if request.method == "GET" and request.args.get("site"):
        form.site_id.data = request.args["site"]
    if not form.validate_on_submit():
        return _form_page(form, status=422 if request.method == "POST" else 200)
    try:
        device = services.create_device(ctx, form.to_data())
    except RuleViolation as exc:
        db.session.rollback()
        getattr(form, exc.field or "name").errors.append(exc.message)
        return _form_page(form, status=422)
    flash(f"Created {device.name}.", "success")
    return redirect(url_for(".show", device_id=device.id), 303)


@bp.route("/import", methods=["GET", "POST"])
@requires(Permission.DEVICES_WRITE)
def import_csv():
    form = ImportForm()
    if not form.validate_on_submit():
        return _import_page(form, None, 422 if request.method == "POST" else 200)
    report = csvio.import_devices(current(), form.file.data.read(),
                                  partial=form.partial.data)
    if report.ok:
        flash(f"Imported {report.imported} device{'s' if report.imported != 1 else ''}.", "success")
        if htmx:
            return "", 200, {"HX-Redirect": url_for(".index")}
        return redirect(url_for(".index"), 303)
    # Rejected rows with nothing imported: 422, and the edge rolls back. With `partial`,
    # the valid rows are kept (200) and the report lists the others.
    return _import_page(form, report, 200 if report.imported else 422)


def _import_page(form, report, status):
    template = "devices/_import_report.html" if htmx else "devices/import.html"
    return render_template(template, form=form, report=report, columns=csvio.COLUMNS, required=csvio.REQUIRED,
                           max_rows=csvio.MAX_ROWS, max_mb=csvio.MAX_BYTES // (1024 * 1024)), status


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc):
    # Raised while CSRFProtect parses the form, before the membership is checked: answer with
    # the plain error page, the same for every tenant slug, so nothing about the tenant shows.
    return render_error(413, f"The file is larger than {csvio.MAX_BYTES // (1024 * 1024)} MB, the limit for "
                             "one import. Split it into smaller files.")


@bp.post("/bulk")
@requires(Permission.DEVICES_STATUS)
def bulk():
    """Change the status of, or move, the selected devices: all in one transaction, or none."""
    ctx = current()
    form = BulkForm()
    back = form.next.data if (form.next.data or "").startswith(url_for(".index")) else url_for(".index")
    ids = []
    for value in form.ids.data or []:
        try:
            ids.append(UUID(value))
        except ValueError:
            abort(400, "The selection is not valid.")
    # Refusals keep the list as it was (its filters, and with htmx the selection): see ui.back_to_list.
    if not ids:
        return ui.back_to_list(back, "Select at least one device.", "error")
    if len(ids) > services.BULK_MAX:
        return ui.back_to_list(back, f"Select at most {services.BULK_MAX} devices at a time.", "error")
    if not form.validate():
        abort(400, "The form is not valid: reload the page and try again.")
    if form.action.data == "move" and not can(Permission.DEVICES_WRITE):
        abort(403, "Your role in this organization does not allow moving devices.")
    devices = queries.visible_devices(ctx, set(ids), for_update=True)
    if len(devices) != len(set(ids)):
        return ui.back_to_list(back, "Some of the selected devices no longer exist or are not yours to change; "
                                     "nothing was changed.", "error")
    try:
        if form.action.data == "move":
            site_id = _uuid_or_none(form.site_id.data)
            changed = services.move_devices(ctx, devices, site_id)
            done = f"Moved {changed} device{'s' if changed != 1 else ''}."
        else:
            status = _status_or_none(form.status.data)
            if status is None:
                raise RuleViolation("Choose a status.")
            changed = services.change_status(ctx, devices, status)
            done = f"Set {changed} device{'s' if changed != 1 else ''} to {status.value}."
    except RuleViolation as exc:
        db.session.rollback()
        return ui.back_to_list(back, exc.message + " Nothing was changed.", "error")
    return ui.back_to_list(back, done)


def _uuid_or_none(value):
    try:
        return UUID(value or "")
    except ValueError:
        return None


def _status_or_none(value):
    try:
        return DeviceStatus(value or "")
    except ValueError:
        return None


def _device_or_404(device_id: UUID, *, for_update: bool = False):
    return queries.get_device_or_404(current(), device_id, for_update=for_update)


def _show_context(device, ctx):
    all_sites = visible_sites(ctx, include_archived=True)
    entries = queries.device_history(ctx, device) if can(Permission.AUDIT_VIEW) else []
    names = history.actor_names(entries)
    site_names = {str(s.id): s.name for s in all_sites}
    return {"device": device, "site": next((s for s in all_sites if s.id == device.site_id), None),
            "status_form": StatusForm(status=device.status.value),
            "move_form": MoveForm(sites=[s for s in visible_sites(ctx) if s.id != device.site_id]),
            "history": entries,
            "describe": lambda e: history.describe(e, names.get(e.user_id), site_names),
            "back_url": _back_to_list(),
            "sections": [html for html in (section(ctx, device) for section in page_sections) if html]}


def _back_to_list() -> str:
    """The list as it was filtered, when the visitor came from it (same origin, same list)."""
    referrer = request.referrer or ""
    base = request.host_url.rstrip("/") + url_for(".index")
    rest = referrer[len(base):] if referrer.startswith(base) else None
    if rest is not None and (rest == "" or rest.startswith("?")):
        return url_for(".index") + rest
    return url_for(".index")


@bp.get("/<uuid:device_id>")
@requires(Permission.DEVICES_VIEW)
def show(device_id: UUID):
    ctx = current()
    device = _device_or_404(device_id)
    return render_template("devices/show.html", **_show_context(device, ctx))


@bp.route("/<uuid:device_id>/edit", methods=["GET", "POST"])
@requires(Permission.DEVICES_WRITE)
def edit(device_id: UUID):
    ctx = current()
    device = _device_or_404(device_id, for_update=request.method == "POST")
    sites = visible_sites(ctx, include_archived=True)
    sites = [s for s in sites if s.archived_at is None or s.id == device.site_id]
    form = DeviceForm(sites=sites) if request.method == "POST" else DeviceForm.for_device(device, sites)
    if not form.validate_on_submit():
        return _form_page(form, device, 422 if request.method == "POST" else 200)
    try:
        services.update_device(ctx, device, form.to_data())
    except RuleViolation as exc:
        db.session.rollback()
        device = _device_or_404(device_id)
        getattr(form, exc.field or "name").errors.append(exc.message)
        return _form_page(form, device, 422)
    flash(f"Saved {device.name}.", "success")
    return redirect(url_for(".show", device_id=device_id), 303)


@bp.post("/<uuid:device_id>/status")
@requires(Permission.DEVICES_STATUS)
def status(device_id: UUID):
    """Inline status change: htmx swaps the status panel, a browser is redirected."""
    device = _device_or_404(device_id, for_update=True)
    form = StatusForm()
    error = None
    if not form.validate():
        abort(400, "Choose a status.")
    try:
        services.change_status(current(), [device], DeviceStatus(form.status.data))
    except RuleViolation as exc:
        db.session.rollback()
        device = _device_or_404(device_id)
        error = exc.message
    if htmx:
        response = make_response(render_template("devices/_status.html", device=device, error=error,
                                                 status_form=StatusForm(status=device.status.value)),
                                 422 if error else 200)
        if not error:
            ui.toast(response, f"{device.name} is now {DeviceStatus(device.status).state}.")
            ui.trigger(response, "device-changed")
        return response
    flash(error or f"{device.name} is now {DeviceStatus(device.status).state}.", "error" if error else "success")
    return redirect(url_for(".show", device_id=device_id), 303)


def _on_device(device, action, done: str):
    """Run one change on a device, then back to its page with the outcome."""
    device_id = device.id  # read before a rollback expires the instance
    try:
        action(device)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash(done.format(name=device.name), "success")
    return redirect(url_for(".show", device_id=device_id), 303)


@bp.post("/<uuid:device_id>/move")
@requires(Permission.DEVICES_WRITE)
def move(device_id: UUID):
    ctx = current()
    device = _device_or_404(device_id, for_update=True)
    form = MoveForm(sites=visible_sites(ctx))
    if not form.validate():
        abort(400, "Choose a site to move the device to.")
    site_id = _uuid_or_none(form.site_id.data)
    return _on_device(device, lambda d: services.move_devices(ctx, [d], site_id),
                      "Moved {name}.")


@bp.post("/<uuid:device_id>/decommission")
@requires(Permission.DEVICES_WRITE)
def decommission(device_id: UUID):
    return _on_device(_device_or_404(device_id, for_update=True),
                      lambda d: services.decommission_device(current(), d), "Decommissioned {name}.")
