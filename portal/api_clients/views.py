"""API clients of a tenant, for people with api:manage."""
from __future__ import annotations

from uuid import UUID

from flask import abort, flash, redirect, render_template, request, url_for

from .. import ui
from ..api import grants, services
from ..extensions import db
from ..rules import RuleViolation
from ..sites.queries import visible_sites
from ..tenancy import Permission, current, requires, tenant_blueprint
from ..tenancy.permissions import grouped
from .forms import AppForm, ClientForm

bp = tenant_blueprint("api_clients", __name__, "/api-clients")


def _client_or_404(client_id: UUID):
    return services.get_client(current(), client_id, for_update=request.method == "POST") or abort(404)


def _uuids(values) -> list[UUID] | None:
    out = []
    for value in values or []:
        try:
            out.append(UUID(value))
        except ValueError:
            return None
    return out


def _show_secret(client, secret: str, rotated: bool = False):
    # POST-redirect-GET: a reload of the page shows no secret and resubmits nothing.
    ui.keep_secret(f"api_client:{client.id}", {"secret": secret, "rotated": rotated})
    return redirect(url_for(".secret", client_id=client.id), 303)


@bp.get("/<uuid:client_id>/secret")
@requires(Permission.API_MANAGE)
def secret(client_id: UUID):
    """The secret just made for a client, shown this once."""
    client = _client_or_404(client_id)
    kept = ui.take_secret(f"api_client:{client.id}") or {}
    return ui.no_store(render_template("api_clients/secret.html", client=client, secret=kept.get("secret"),
                                       rotated=kept.get("rotated", False),
                                       grace_hours=int(services.grace().total_seconds() // 3600)))


@bp.get("/")
@requires(Permission.API_MANAGE)
def index():
    ctx = current()
    sites = {s.id: s.name for s in visible_sites(ctx, include_archived=True)}
    return render_template("api_clients/index.html", clients=services.clients(ctx), sites=sites)


@bp.route("/new", methods=["GET", "POST"])
@requires(Permission.API_MANAGE)
def create():
    ctx = current()
    form = ClientForm()
    sites = visible_sites(ctx)
    if not form.validate_on_submit():
        return _form(form, sites, 422 if request.method == "POST" else 200)
    site_ids = _uuids(form.sites.data)
    if site_ids is None:
        form.sites.errors.append("Choose sites from the list.")
        return _form(form, sites, 422)
    try:
        client, secret = services.create_client(ctx, services.ClientData(form.name.data, form.scopes.data or [],
                                                                         site_ids or None))
    except RuleViolation as exc:
        db.session.rollback()
        {"scopes": form.scopes, "site_ids": form.sites}.get(exc.field, form.name).errors.append(exc.message)
        return _form(form, visible_sites(ctx), 422)
    return _show_secret(client, secret)


def _form(form, sites, status):
    ctx = current()
    return render_template("api_clients/form.html", form=form, sites=sites, catalogue=grouped(list(Permission)),
                           grantable=set(services.grantable(ctx))), status


@bp.post("/<uuid:client_id>/rotate")
@requires(Permission.API_MANAGE)
def rotate(client_id: UUID):
    client = _client_or_404(client_id)
    secret = services.rotate_secret(current(), client)
    return _show_secret(client, secret, rotated=True)


@bp.post("/<uuid:client_id>/disable")
@requires(Permission.API_MANAGE)
def disable(client_id: UUID):
    return _change(client_id, True)


@bp.post("/<uuid:client_id>/enable")
@requires(Permission.API_MANAGE)
def enable(client_id: UUID):
    return _change(client_id, False)


def _change(client_id: UUID, disabled: bool):
    client = _client_or_404(client_id)
    try:
        services.set_disabled(current(), client, disabled)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash(f"{client.name} is {'disabled: its tokens stop working now' if disabled else 'enabled'}.", "success")
    return redirect(url_for(".index"), 303)


@bp.post("/<uuid:client_id>/delete")
@requires(Permission.API_MANAGE)
def delete(client_id: UUID):
    client = _client_or_404(client_id)
    name = client.name
    services.delete_client(current(), client)
    flash(f"Deleted {name}; its tokens no longer work.", "success")
    return redirect(url_for(".index"), 303)


# --- OAuth apps (authorization code with PKCE) and the grants people gave them ----------------

def _app_or_404(app_id: UUID):
    return grants.get_app(current(), app_id, for_update=request.method == "POST") or abort(404)


@bp.get("/apps")
@requires(Permission.API_MANAGE)
def apps():
    ctx = current()
    return render_template("api_clients/apps.html", apps=grants.apps(ctx), grants=grants.tenant_grants(ctx))


@bp.route("/apps/new", methods=["GET", "POST"])
@requires(Permission.API_MANAGE)
def create_app():
    ctx = current()
    form = AppForm()
    if not form.validate_on_submit():
        return _app_form(form, 422 if request.method == "POST" else 200)
    data = grants.AppData(form.name.data, form.redirect_uris.data.splitlines(), form.client_type.data == "public",
                          form.scopes.data or [])
    try:
        client, secret = grants.create_app(ctx, data)
    except RuleViolation as exc:
        db.session.rollback()
        {"scopes": form.scopes, "redirect_uris": form.redirect_uris}.get(exc.field, form.name).errors.append(exc.message)
        return _app_form(form, 422)
    ui.keep_secret(f"oauth_app:{client.id}", {"secret": secret})
    return redirect(url_for(".app_created", app_id=client.id), 303)


def _app_form(form, status):
    return render_template("api_clients/app_form.html", form=form, catalogue=grouped(list(Permission)),
                           grantable=set(services.grantable(current()))), status


@bp.get("/apps/<uuid:app_id>")
@requires(Permission.API_MANAGE)
def app_created(app_id: UUID):
    """The new app's client id, and a confidential app's secret this once."""
    client = _app_or_404(app_id)
    kept = ui.take_secret(f"oauth_app:{client.id}") or {}
    return ui.no_store(render_template("api_clients/app_created.html", client=client, secret=kept.get("secret")))


@bp.post("/apps/<uuid:app_id>/delete")
@requires(Permission.API_MANAGE)
def delete_app(app_id: UUID):
    client = _app_or_404(app_id)
    name = client.name
    grants.delete_app(current(), client)
    flash(f"Deleted {name}; the access people gave it has ended.", "success")
    return redirect(url_for(".apps"), 303)


@bp.post("/grants/<uuid:grant_id>/revoke")
@requires(Permission.API_MANAGE)
def revoke_grant(grant_id: UUID):
    ctx = current()
    grant = grants.get_grant(ctx.tenant_id, grant_id, for_update=True) or abort(404)
    if grants.revoke_grant(ctx.tenant_id, ctx.user_id, grant, "owner"):
        flash("Revoked: that app can no longer act for that person.", "success")
    else:
        flash("That access had already ended.", "info")
    return redirect(url_for(".apps"), 303)
