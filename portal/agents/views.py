"""/t/<slug>/devices/<id>/agent/...: a device's agent credential (agents:manage) and the tasks
queued for its agent (agents:run). The task list is one fragment, on the device page and
refreshed by htmx polling from the same URL."""
from __future__ import annotations

from uuid import UUID

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from markupsafe import Markup

from .. import ui
from ..devices.queries import get_device_or_404, visible_devices
from ..devices.services import BULK_MAX
from ..extensions import db, htmx
from ..rules import RuleViolation
from ..tenancy import Permission, current, requires, tenant_blueprint
from . import credentials, services
from .forms import COMMANDS, CredentialForm, PlainForm, TaskForm
from .models import Command, TaskStatus

bp = tenant_blueprint("agents", __name__, "/devices")


def _panel_context(ctx, device, form=None):
    tasks = services.device_tasks(ctx, device)
    credential = credentials.live_credential(ctx, device) if ctx.can(Permission.AGENTS_MANAGE) else None
    return {"device": device, "tasks": tasks, "task_form": form or TaskForm(),
            "busy": any(not TaskStatus(t.status).finished for t, _ in tasks), "credential": credential,
            # Rotating keeps what the credential is: the box shows its current gateway flag.
            "credential_form": CredentialForm(formdata=None, gateway=bool(credential and credential.gateway)),
            "plain_form": PlainForm(), "Command": Command}


def bulk_action(ctx):
    """"Send a command" for the devices selected in the list (registered with devices.bulk_actions)."""
    if not ctx.can(Permission.AGENTS_RUN):
        return None
    return Markup(render_template("agents/_bulk.html", commands=[c for c in COMMANDS if c.value != Command.CUSTOM]))


def device_section(ctx, device):
    """The agent section of a device's page (registered with devices.page_sections)."""
    if not (ctx.can(Permission.AGENTS_RUN) or ctx.can(Permission.AGENTS_MANAGE)):
        return None
    return Markup(render_template("agents/_section.html", **_panel_context(ctx, device)))


@bp.get("/<uuid:device_id>/agent")
@requires(Permission.AGENTS_RUN)
def tasks(device_id: UUID):
    """The device's tasks and results: the fragment for htmx (its polling), else a page."""
    ctx = current()
    device = get_device_or_404(ctx, device_id)
    template = "agents/_tasks.html" if htmx else "agents/device.html"
    return render_template(template, **_panel_context(ctx, device))


@bp.post("/<uuid:device_id>/agent/tasks")
@requires(Permission.AGENTS_RUN)
def queue(device_id: UUID):
    ctx = current()
    device = get_device_or_404(ctx, device_id)
    form = TaskForm()
    if form.validate_on_submit():
        try:
            services.queue_task(ctx, [device], Command(form.command.data), form.task_parameters(), form.expires_in())
        except RuleViolation as exc:
            db.session.rollback()
            getattr(form, exc.field, form.command).errors.append(exc.message)
        else:
            flash(f"Queued {Command(form.command.data).value.replace('_', ' ')} for {device.name}.", "success")
            return redirect(url_for("devices.show", device_id=device_id) + "#agent", 303)
    device = get_device_or_404(ctx, device_id)
    return render_template("agents/device.html", **_panel_context(ctx, device, form)), 422


@bp.post("/agent/tasks")
@requires(Permission.AGENTS_RUN)
def queue_selection():
    """The same command for each device selected in the list: all queued, or none."""
    ctx = current()
    back = request.form.get("next") or ""
    back = back if back.startswith(url_for("devices.index")) else url_for("devices.index")
    ids = []
    for value in request.form.getlist("ids"):
        try:
            ids.append(UUID(value))
        except ValueError:
            abort(400, "The selection is not valid.")
    form = TaskForm()
    # Refusals keep the list as it was (its filters, and with htmx the selection): see ui.back_to_list.
    if not ids:
        return ui.back_to_list(back, "Select at least one device.", "error")
    if len(ids) > BULK_MAX:
        return ui.back_to_list(back, f"Select at most {BULK_MAX} devices at a time.", "error")
    if not form.validate_on_submit():
        return ui.back_to_list(back, "The command was not queued: "
                               + "; ".join(e for errors in form.errors.values() for e in errors), "error")
    devices = visible_devices(ctx, set(ids))
    if len(devices) != len(set(ids)):
        return ui.back_to_list(back, "Some of the selected devices no longer exist or are not yours; "
                                     "nothing was queued.", "error")
    try:
        tasks = services.queue_task(ctx, devices, Command(form.command.data), form.task_parameters(),
                                    form.expires_in())
    except RuleViolation as exc:
        db.session.rollback()
        return ui.back_to_list(back, exc.message + " Nothing was queued.", "error")
    return ui.back_to_list(back, f"Queued {Command(form.command.data).value.replace('_', ' ')} for {len(tasks)} "
                                 f"device{'s' if len(tasks) != 1 else ''}.")


@bp.post("/<uuid:device_id>/agent/tasks/<uuid:agent_task_id>/cancel")
@requires(Permission.AGENTS_RUN)
def cancel(device_id: UUID, agent_task_id: UUID):
    ctx = current()
    device = get_device_or_404(ctx, device_id)
    task = services.get_task(ctx, device, agent_task_id, for_update=True) or abort(404)
    try:
        services.cancel_task(ctx, task)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash("Task cancelled.", "success")
    return redirect(url_for("devices.show", device_id=device_id) + "#agent", 303)


@bp.post("/<uuid:device_id>/agent/credential")
@requires(Permission.AGENTS_MANAGE)
def issue_credential(device_id: UUID):
    """Issue (or rotate) the device's agent secret and show it, this once."""
    ctx = current()
    device = get_device_or_404(ctx, device_id, for_update=True)
    form = CredentialForm()
    if not form.validate_on_submit():
        abort(400, "The form expired. Please try again.")
    try:
        secret = credentials.issue(ctx, device, gateway=bool(form.gateway.data))
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("devices.show", device_id=device_id), 303)
    # POST-redirect-GET: a reload of the page shows no secret and issues none.
    ui.keep_secret(f"agent:{device.id}", {"secret": secret, "gateway": bool(form.gateway.data)})
    return redirect(url_for(".credential_secret", device_id=device.id), 303)


@bp.get("/<uuid:device_id>/agent/credential")
@requires(Permission.AGENTS_MANAGE)
def credential_secret(device_id: UUID):
    """The agent secret just issued, shown this once."""
    device = get_device_or_404(current(), device_id)
    kept = ui.take_secret(f"agent:{device.id}") or {}
    return ui.no_store(render_template("agents/secret.html", device=device, secret=kept.get("secret"),
                                       gateway=kept.get("gateway", False), api_url=current_app.config["BASE_URL"]))


@bp.post("/<uuid:device_id>/agent/credential/revoke")
@requires(Permission.AGENTS_MANAGE)
def revoke_credential(device_id: UUID):
    ctx = current()
    device = get_device_or_404(ctx, device_id, for_update=True)
    if not PlainForm().validate_on_submit():
        abort(400, "The form expired. Please try again.")
    if credentials.revoke(ctx, device):
        flash(f"Revoked the agent credential of {device.name}: its agent can no longer connect.", "success")
    else:
        flash(f"{device.name} has no agent credential.", "error")
    return redirect(url_for("devices.show", device_id=device_id) + "#agent", 303)
