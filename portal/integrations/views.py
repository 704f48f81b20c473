"""/t/<slug>/integrations: the list, a form per provider, an integration's page with its delivery
and sync log (keyset pages, htmx fragment), and the actions. Credentials are write-only: a
form replaces them and nothing shows them; a signing secret is shown once (POST-redirect-GET)."""
from __future__ import annotations

import base64
from datetime import datetime
from uuid import UUID

from flask import abort, flash, redirect, render_template, request, url_for

from .. import ui
from ..extensions import db
from ..rules import RuleViolation
from ..tenancy import Permission, current, requires, tenant_blueprint
from ..tenancy.limits import room_left
from . import providers, services
from .forms import CredentialsForm, IntegrationForm

bp = tenant_blueprint("integrations", __name__, "/integrations")


def _integration_or_404(integration_id: UUID):
    return services.get(current(), integration_id, for_update=request.method == "POST") or abort(404)


def _show_secret(integration, secret: str, rotated: bool = False):
    # POST-redirect-GET: a reload shows no secret and resubmits nothing.
    ui.keep_secret(f"integration:{integration.id}", {"secret": secret, "rotated": rotated})
    return redirect(url_for(".secret", integration_id=integration.id), 303)


def _provider_values(provider: providers.Provider) -> dict:
    values = {}
    for f in provider.config:
        values[f.name] = request.form.getlist(f.name) if f.kind == "events" else request.form.get(f.name, "")
    return values


@bp.get("/")
@requires(Permission.INTEGRATIONS_VIEW)
def index():
    ctx = current()
    rows = services.integrations(ctx)
    return render_template("integrations/index.html", integrations=rows, providers=providers.PROVIDERS,
                           available=services.available(ctx),
                           room=room_left(ctx.tenant, "max_integrations", len(rows)))


@bp.route("/new/<provider>", methods=["GET", "POST"])
@requires(Permission.INTEGRATIONS_MANAGE)
def create(provider: str):
    ctx = current()
    chosen = providers.PROVIDERS.get(provider) or abort(404)
    form = IntegrationForm()
    errors: dict[str, str] = {}
    values = _provider_values(chosen) if request.method == "POST" else \
        {f.name: f.default for f in chosen.config if f.default is not None}
    if form.validate_on_submit():
        credentials = {f.name: request.form.get(f.name, "") for f in chosen.credentials}
        try:
            integration, secret = services.create(ctx, chosen.key, form.name.data, values, credentials,
                                                  form.description.data)
        except RuleViolation as exc:
            db.session.rollback()
            if exc.field in ("name", "description"):
                getattr(form, exc.field).errors.append(exc.message)
            else:
                errors[exc.field or "provider"] = exc.message
        else:
            if secret:
                return _show_secret(integration, secret)
            flash(f"Created {integration.name}.", "success")
            return redirect(url_for(".show", integration_id=integration.id), 303)
    status = 422 if request.method == "POST" else 200
    return render_template("integrations/form.html", form=form, provider=chosen, values=values, errors=errors,
                           integration=None, events=providers.event_choices()), status


@bp.route("/<uuid:integration_id>/edit", methods=["GET", "POST"])
@requires(Permission.INTEGRATIONS_MANAGE)
def edit(integration_id: UUID):
    integration = _integration_or_404(integration_id)
    provider = providers.get(integration.provider)
    form = IntegrationForm(obj=integration)
    errors: dict[str, str] = {}
    values = _provider_values(provider) if request.method == "POST" else dict(integration.config or {})
    if form.validate_on_submit():
        try:
            services.update(current(), integration, form.name.data, values, form.description.data)
        except RuleViolation as exc:
            db.session.rollback()
            if exc.field in ("name", "description"):
                getattr(form, exc.field).errors.append(exc.message)
            else:
                errors[exc.field or "provider"] = exc.message
        else:
            flash(f"Saved {integration.name}.", "success")
            return redirect(url_for(".show", integration_id=integration.id), 303)
    status = 422 if request.method == "POST" else 200
    return render_template("integrations/form.html", form=form, provider=provider, values=values, errors=errors,
                           integration=integration, events=providers.event_choices()), status


@bp.get("/<uuid:integration_id>/secret")
@requires(Permission.INTEGRATIONS_MANAGE)
def secret(integration_id: UUID):
    """The signing secret just made, shown this once."""
    integration = _integration_or_404(integration_id)
    kept = ui.take_secret(f"integration:{integration.id}") or {}
    return ui.no_store(render_template("integrations/secret.html", integration=integration,
                                       provider=providers.get(integration.provider), secret=kept.get("secret"),
                                       rotated=kept.get("rotated", False)))


def _anchor(value: str | None):
    if not value:
        return None
    try:
        at, _, ident = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode().partition("|")
        return datetime.fromisoformat(at), UUID(ident)
    except (ValueError, UnicodeDecodeError):
        abort(400, "Not a page of this log: use its Next link.")


def _cursor(anchor) -> str | None:
    if anchor is None:
        return None
    return base64.urlsafe_b64encode(f"{anchor[0].isoformat()}|{anchor[1]}".encode()).decode().rstrip("=")


@bp.get("/<uuid:integration_id>")
@requires(Permission.INTEGRATIONS_VIEW)
def show(integration_id: UUID):
    ctx = current()
    integration = _integration_or_404(integration_id)
    before = request.args.get("before")
    entries, following = services.log_page(ctx, integration, _anchor(before))
    context = {"integration": integration, "provider": providers.get(integration.provider), "entries": entries,
               "next_url": url_for(".show", integration_id=integration.id, before=_cursor(following))
               if following else None,
               "first_url": url_for(".show", integration_id=integration.id) if before else None,
               "credentials_form": CredentialsForm()}
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "integration-log":
        return render_template("integrations/_log.html", **context)
    return render_template("integrations/show.html", **context)


@bp.post("/<uuid:integration_id>/credentials")
@requires(Permission.INTEGRATIONS_MANAGE)
def credentials(integration_id: UUID):
    integration = _integration_or_404(integration_id)
    provider = providers.get(integration.provider)
    form = CredentialsForm()
    if not form.validate_on_submit():
        abort(400, "Your form expired. Please try again.")
    try:
        secret = services.replace_credentials(current(), integration,
                                              {f.name: request.form.get(f.name, "") for f in provider.credentials})
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".show", integration_id=integration.id), 303)
    if secret:
        return _show_secret(integration, secret, rotated=True)
    flash(f"Replaced the credentials of {integration.name}; the old ones are gone.", "success")
    return redirect(url_for(".show", integration_id=integration.id), 303)


def _act(integration_id: UUID, action, done: str):
    integration = _integration_or_404(integration_id)
    try:
        action(current(), integration)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash(done.format(name=integration.name), "success")
    return redirect(url_for(".show", integration_id=integration_id), 303)


@bp.post("/<uuid:integration_id>/enable")
@requires(Permission.INTEGRATIONS_MANAGE)
def enable(integration_id: UUID):
    return _act(integration_id, lambda ctx, i: services.set_enabled(ctx, i, True), "{name} is enabled.")


@bp.post("/<uuid:integration_id>/disable")
@requires(Permission.INTEGRATIONS_MANAGE)
def disable(integration_id: UUID):
    return _act(integration_id, lambda ctx, i: services.set_enabled(ctx, i, False),
                "{name} is disabled: nothing is sent or pulled until it is enabled again.")


@bp.post("/<uuid:integration_id>/sync")
@requires(Permission.INTEGRATIONS_MANAGE)
def sync(integration_id: UUID):
    return _act(integration_id, services.sync_now, "A sync of {name} is queued; the log shows it once it ran.")


@bp.post("/<uuid:integration_id>/test")
@requires(Permission.INTEGRATIONS_MANAGE)
def test(integration_id: UUID):
    return _act(integration_id, services.send_test, "A test event to {name} is queued; the log shows how it went.")


@bp.post("/<uuid:integration_id>/log/<uuid:entry_id>/replay")
@requires(Permission.INTEGRATIONS_MANAGE)
def replay(integration_id: UUID, entry_id: UUID):
    ctx = current()
    integration = _integration_or_404(integration_id)
    entry = services.log_entry(ctx, integration, entry_id) or abort(404)
    try:
        services.replay(ctx, integration, entry)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash("The delivery is queued again (with the same webhook-id).", "success")
    return redirect(url_for(".show", integration_id=integration_id), 303)


@bp.post("/<uuid:integration_id>/delete")
@requires(Permission.INTEGRATIONS_MANAGE)
def delete(integration_id: UUID):
    integration = _integration_or_404(integration_id)
    name = integration.name
    services.delete(current(), integration)
    flash(f"Deleted {name} and its log.", "success")
    return redirect(url_for(".index"), 303)
