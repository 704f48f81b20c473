"""/t/<slug>/settings/sso: the organization's single sign-on (sso:manage, owners by default):
connections, verified domains, group mappings, and the "Test connection" round trip."""
from __future__ import annotations

from uuid import UUID

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.routing import BuildError

from .. import egress
from ..extensions import db
from ..rules import RuleViolation
from ..sites.queries import visible_sites
from ..tenancy import Permission, current, requires, roles, tenant_blueprint
from . import connections as services, domains
from .forms import ConnectionForm, DomainForm, MappingForm
from .org_views import PROVIDER_ERRORS, begin, provider_error, redirect_uri

bp = tenant_blueprint("sso_settings", __name__, "/settings/sso")
SECTION = "sso_settings.index"


def _sections():
    return current_app.extensions.get("settings_sections", ((SECTION, "Single sign-on"),))


def _provisioning_url() -> str | None:
    """The SCIM section (portal/scim), when that area is installed."""
    for endpoint in ("scim_settings.index", "provisioning.index", "settings.provisioning"):
        try:
            return url_for(endpoint)
        except BuildError:
            continue
    return None


def _page(template: str, status: int = 200, **context):
    return render_template(template, sections=_sections(), section=SECTION, provisioning_url=_provisioning_url(),
                           redirect_uri=redirect_uri(), **context), status


def _role_choices(ctx, include_owner: bool = False):
    return [(r.key, r.name) for r in roles.tenant_roles(ctx.tenant_id) if include_owner or not r.is_owner]


def _connection_or_404(connection_id: UUID):
    return services.get_connection(current(), connection_id) or abort(404)


def _domain_or_404(domain_id: UUID):
    return domains.get_domain(current(), domain_id) or abort(404)


@bp.get("/")
@requires(Permission.SSO_MANAGE)
def index():
    ctx = current()
    return _page("sso/index.html", connections=services.connections(ctx), domains=domains.domains(ctx),
                 domain_form=DomainForm(formdata=None), record_name=domains.record_name,
                 record_value=domains.record_value)


def _connection_form(ctx, form: ConnectionForm) -> ConnectionForm:
    form.default_role.choices = _role_choices(ctx)
    return form


def _data(form: ConnectionForm) -> services.ConnectionData:
    return services.ConnectionData(form.name.data, form.issuer_url(), form.client_id.data, form.client_secret.data,
                                   form.default_role.data or "member", bool(form.invitations_only.data),
                                   bool(form.owner_by_mapping.data))


def _field_of(form: ConnectionForm, field: str | None):
    if field == "issuer":
        return form.realm if form.kind.data == "keycloak" else form.issuer
    return getattr(form, field or "name", form.name)


@bp.route("/new", methods=["GET", "POST"])
@requires(Permission.SSO_MANAGE)
def create():
    ctx = current()
    form = _connection_form(ctx, ConnectionForm())
    if request.method == "GET":
        form.default_role.data = "member"
    if not form.validate_on_submit():
        return _page("sso/connection_form.html", 422 if request.method == "POST" else 200, form=form, connection=None)
    try:
        connection = services.create(ctx, _data(form))
    except RuleViolation as exc:
        db.session.rollback()
        _field_of(form, exc.field).errors.append(exc.message)
        return _page("sso/connection_form.html", 422, form=form, connection=None)
    flash(f"{connection.name} is set up and disabled: test it, map groups, then enable it.", "success")
    return redirect(url_for(".show", connection_id=connection.id), 303)


@bp.route("/<uuid:connection_id>", methods=["GET", "POST"])
@requires(Permission.SSO_MANAGE)
def show(connection_id: UUID):
    ctx = current()
    connection = _connection_or_404(connection_id)
    if request.method == "GET":
        form = _connection_form(ctx, ConnectionForm(formdata=None, obj=connection))
        form.kind.data, form.issuer.data = "oidc", connection.issuer
        return _show(connection, form)
    form = _connection_form(ctx, ConnectionForm())
    if not form.validate_on_submit():
        return _show(connection, form, 422)
    try:
        services.update(ctx, connection, _data(form))
    except RuleViolation as exc:
        db.session.rollback()
        connection = _connection_or_404(connection_id)
        _field_of(form, exc.field).errors.append(exc.message)
        return _show(connection, form, 422)
    flash(f"Saved {connection.name}.", "success")
    return redirect(url_for(".show", connection_id=connection.id), 303)


def _mapping_form(ctx, connection, form: MappingForm | None = None) -> MappingForm:
    if form is None:
        form = MappingForm(formdata=None)
        form.role.data = "member"
    form.role.choices = _role_choices(ctx, include_owner=connection.owner_by_mapping and ctx.is_owner)
    form.sites.choices = [(str(s.id), s.name) for s in visible_sites(ctx)]
    return form


def _show(connection, form: ConnectionForm, status: int = 200, mapping_form: MappingForm | None = None):
    ctx = current()
    book = roles.book(ctx.tenant_id)
    sites = {s.id: s.name for s in visible_sites(ctx, include_archived=True)}
    return _page("sso/connection.html", status, connection=connection, form=form,
                 mapping_form=_mapping_form(ctx, connection, mapping_form), mappings=services.mappings(ctx, connection),
                 identities=services.identities(ctx, connection), book=book, sites=sites)


@bp.post("/<uuid:connection_id>/enable")
@requires(Permission.SSO_MANAGE)
def enable(connection_id: UUID):
    return _switch(connection_id, True)


@bp.post("/<uuid:connection_id>/disable")
@requires(Permission.SSO_MANAGE)
def disable(connection_id: UUID):
    return _switch(connection_id, False)


def _switch(connection_id: UUID, enabled: bool):
    connection = _connection_or_404(connection_id)
    try:
        services.set_enabled(current(), connection, enabled)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash(f"{connection.name} is {'enabled: people of your verified domains sign in through it' if enabled else 'disabled'}.",
              "success")
    return redirect(url_for(".index"), 303)


@bp.post("/<uuid:connection_id>/delete")
@requires(Permission.SSO_MANAGE)
def delete(connection_id: UUID):
    connection = _connection_or_404(connection_id)
    name = connection.name
    services.delete(current(), connection)
    flash(f"Deleted {name}, its group mappings and its links to accounts.", "success")
    return redirect(url_for(".index"), 303)


@bp.post("/<uuid:connection_id>/test")
@requires(Permission.SSO_MANAGE)
def test(connection_id: UUID):
    """A real sign-in round trip (meant for a new tab) whose callback only reports the claims."""
    ctx = current()
    connection = _connection_or_404(connection_id)
    try:
        return begin(connection, target=None, test_by=ctx.user_id)
    except egress.Refused as exc:
        current_app.logger.warning("Connection test refused (tenant %s, connection %s): %s", ctx.tenant_id,
                                   connection.id, exc)
        flash(f"The test could not start: single sign-on cannot reach this provider. {exc}", "error")
        return redirect(url_for(".show", connection_id=connection.id), 303)
    except PROVIDER_ERRORS as exc:
        current_app.logger.info("Connection test could not start: %r", exc)
        flash(f"The test could not start: the provider at {connection.issuer} could not be reached or its discovery "
              f"document is not usable ({provider_error(exc)}).", "error")
        return redirect(url_for(".show", connection_id=connection.id), 303)


@bp.post("/<uuid:connection_id>/mappings")
@requires(Permission.SSO_MANAGE)
def add_mapping(connection_id: UUID):
    ctx = current()
    connection = _connection_or_404(connection_id)
    form = _mapping_form(ctx, connection, MappingForm())
    form.validate_on_submit()
    site_ids = []
    for value in form.sites.data or []:
        try:
            site_ids.append(UUID(value))
        except ValueError:
            form.sites.errors.append("Choose sites from the list.")
    if form.errors:
        return _show(connection, _connection_form(ctx, ConnectionForm(formdata=None, obj=connection)), 422, form)
    try:
        services.add_mapping(ctx, connection, form.group.data, form.external_id.data, form.role.data, site_ids)
    except RuleViolation as exc:
        db.session.rollback()
        connection = _connection_or_404(connection_id)
        getattr(form, exc.field or "group", form.group).errors.append(exc.message)
        return _show(connection, _connection_form(ctx, ConnectionForm(formdata=None, obj=connection)), 422, form)
    flash(f"Members in {form.group.data} get their role from it at their next sign-in.", "success")
    return redirect(url_for(".show", connection_id=connection.id) + "#mappings", 303)


@bp.post("/mappings/<uuid:mapping_id>/delete")
@requires(Permission.SSO_MANAGE)
def delete_mapping(mapping_id: UUID):
    ctx = current()
    from .models import SsoConnection, SsoGroupMapping
    from sqlalchemy import select
    found = db.session.execute(select(SsoGroupMapping, SsoConnection).join(
        SsoConnection, (SsoConnection.tenant_id == SsoGroupMapping.tenant_id)
        & (SsoConnection.id == SsoGroupMapping.connection_id)).where(
        SsoGroupMapping.tenant_id == ctx.tenant_id, SsoGroupMapping.id == mapping_id)).first() or abort(404)
    mapping, connection = found
    services.delete_mapping(ctx, connection, mapping)
    flash(f"Deleted the mapping of {mapping.group_name}; roles already given stay until changed.", "success")
    return redirect(url_for(".show", connection_id=connection.id) + "#mappings", 303)


@bp.post("/domains")
@requires(Permission.SSO_MANAGE)
def claim_domain():
    ctx = current()
    form = DomainForm()
    if form.validate_on_submit():
        try:
            row = domains.claim(ctx, form.domain.data)
        except RuleViolation as exc:
            db.session.rollback()
            form.domain.errors.append(exc.message)
        else:
            flash(f"Publish the TXT record shown for {row.domain}, then press “Check now”.", "success")
            return redirect(url_for(".index") + f"#domain-{row.id}", 303)
    return _page("sso/index.html", 422, connections=services.connections(ctx), domains=domains.domains(ctx),
                 domain_form=form, record_name=domains.record_name, record_value=domains.record_value)


@bp.post("/domains/<uuid:domain_id>/check")
@requires(Permission.SSO_MANAGE)
def check_domain(domain_id: UUID):
    row = _domain_or_404(domain_id)
    result = domains.check_now(current(), row)
    flash(result.message, "success" if result.verified else "error")
    return redirect(url_for(".index") + f"#domain-{domain_id}", 303)


@bp.post("/domains/<uuid:domain_id>/require")
@requires(Permission.SSO_MANAGE)
def require_sso(domain_id: UUID):
    row = _domain_or_404(domain_id)
    required = request.form.get("required") == "1"
    try:
        domains.set_require_sso(current(), row, required)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash(f"Single sign-on is {'required' if required else 'no longer required'} for {row.domain}."
              + (" Owners may still use their password (break-glass); it is audited." if required else ""), "success")
    return redirect(url_for(".index") + f"#domain-{domain_id}", 303)


@bp.post("/domains/<uuid:domain_id>/delete")
@requires(Permission.SSO_MANAGE)
def delete_domain(domain_id: UUID):
    row = _domain_or_404(domain_id)
    name = row.domain
    domains.remove(current(), row)
    flash(f"Removed {name}: its people no longer sign in through your connections by their address.", "success")
    return redirect(url_for(".index"), 303)
