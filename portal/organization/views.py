"""/t/<slug>/settings/<section>: general, branding, security policy, plan and usage, data export and
the danger zone, each a page of its own beside the section nav (`SECTIONS`)."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, send_file, url_for

from .. import audit
from ..devices.services import in_service
from sqlalchemy import text

from ..extensions import db, htmx
from ..invitations.services import seats_used
from ..rules import RuleViolation
from ..security import login
from ..sites.services import active_sites
from ..tenancy import Permission, current, requires, tenant_blueprint, works_read_only
from ..tenants.plans import get_plan
from . import branding, services
from .export import file_of
from .forms import AccentForm, DeleteForm, LogoForm, ProfileForm, SecurityForm

bp = tenant_blueprint("settings", __name__, "/settings")


# The sections of the settings, in the order of the section nav: (endpoint, label). Every one needs
# tenant:manage, as every form on them does (owners by default); "Single sign-on" and "Provisioning"
# (portal/scim) need sso:manage (owners).
SECTIONS = (("settings.general", "General"), ("settings.branding", "Branding"), ("settings.security", "Security"),
            ("settings.plan", "Plan and usage"), ("settings.export", "Data export"),
            ("sso_settings.index", "Single sign-on"), ("provisioning.index", "Provisioning"),
            ("settings.danger", "Danger zone"))


def _usage(ctx) -> list[tuple[str, int, int]]:
    """(what, used, allowed) for each limit of the plan, as the areas count them."""
    tenant = ctx.tenant
    sites, devices = active_sites(ctx.tenant_id), in_service(ctx.tenant_id)
    # Counted here in SQL: the areas that own these tables stand above this one.
    integrations, clients = db.session.execute(text(
        "SELECT (SELECT count(*) FROM integrations WHERE tenant_id = :t), "
        "(SELECT count(*) FROM api_clients WHERE tenant_id = :t)"), {"t": ctx.tenant_id}).one()
    return [("Users (members and pending invitations)", seats_used(tenant), tenant.max_users),
            ("Active sites", sites, tenant.max_sites), ("Devices in service", devices, tenant.max_devices),
            ("Integrations", integrations, tenant.max_integrations), ("API clients", clients, tenant.max_api_clients)]


def _section(name: str, status: int = 200, **context):
    """One section's page: the section nav beside what that section needs (and nothing more)."""
    return render_template(f"organization/{name}.html", sections=SECTIONS, section=f"settings.{name}",
                           **context), status


@bp.get("/")
@requires(Permission.TENANT_MANAGE)
def index():
    """The settings' first section. A browser keeps an old link's anchor (#security, #branding,
    #export) across the redirect; static/sections.js then opens the section of that name."""
    return redirect(url_for(".general"), 303)


def _profile_form(ctx) -> ProfileForm:
    return ProfileForm(formdata=None, name=ctx.tenant.name, slug=ctx.tenant.slug,
                       contact_email=ctx.tenant.contact_email, timezone=(ctx.tenant.settings or {}).get("timezone"))


@bp.route("/general", methods=["GET", "POST"])
@requires(Permission.TENANT_MANAGE)
def general():
    """Name, address, contact and time zone."""
    ctx = current()
    if request.method == "GET":
        return _section("general", profile=_profile_form(ctx))
    form = ProfileForm()
    if form.validate():
        try:
            services.update_profile(ctx, form.to_data())
        except RuleViolation as exc:
            db.session.rollback()
            getattr(form, exc.field or "name").errors.append(exc.message)
        else:
            flash("Saved the organization's name, address and contact.", "success")
            return redirect(url_for(".general", tenant_slug=ctx.tenant.slug), 303)
    return _section("general", 422, profile=form)


def _branding(status: int = 200, logo=None, accent=None):
    brand = branding.branding(current().tenant)
    return _section("branding", status, brand=brand, logo=logo or LogoForm(formdata=None),
                    accent=accent or AccentForm(formdata=None, accent=brand.get("accent", "")))


@bp.get("/branding", endpoint="branding")
@requires(Permission.TENANT_MANAGE)
def branding_section():
    return _branding()


@bp.route("/security", methods=["GET", "POST"])
@requires(Permission.TENANT_MANAGE)
def security():
    """The security policy: two-factor, session limits, allowed networks, sharing members' sign-ins."""
    ctx = current()
    if request.method == "GET":
        return _section("security", security=SecurityForm.for_policy(login.policy(ctx.tenant)))
    form = SecurityForm()
    if form.validate():
        try:
            services.update_security(ctx, form.to_data(), request.remote_addr)
        except RuleViolation as exc:
            db.session.rollback()
            getattr(form, exc.field or "ip_allowlist").errors.append(exc.message)
        else:
            flash("Saved the security policy. It applies to every member's next request.", "success")
            return redirect(url_for(".security"), 303)
    return _section("security", 422, security=form)


@bp.get("/plan")
@requires(Permission.TENANT_MANAGE)
def plan():
    ctx = current()
    return _section("plan", plan=get_plan(ctx.tenant.plan), usage=_usage(ctx))


@bp.post("/logo")
@requires(Permission.TENANT_MANAGE)
def logo():
    form = LogoForm()
    if form.validate():
        upload = request.files.get("logo")
        try:
            data = upload.read() if upload else b""  # bounded by MAX_CONTENT_LENGTH
            branding.set_logo(current(), branding.decode_logo(data, upload.filename if upload else None))
        except RuleViolation as exc:
            db.session.rollback()
            form.logo.errors = [exc.message]
        else:
            flash("The logo is saved: it shows in the header of the organization's pages.", "success")
            return redirect(url_for(".branding"), 303)
    return _branding(422, logo=form)


@bp.post("/logo/remove")
@requires(Permission.TENANT_MANAGE)
def remove_logo():
    if branding.remove_logo(current()):
        flash("The logo is removed.", "success")
    return redirect(url_for(".branding"), 303)


@bp.post("/accent")
@requires(Permission.TENANT_MANAGE)
def accent():
    form = AccentForm()
    if form.validate():
        try:
            branding.set_accent(current(), form.accent.data)
        except RuleViolation as exc:
            db.session.rollback()
            form.accent.errors.append(exc.message)
        else:
            flash("The accent colour is saved.", "success")
            return redirect(url_for(".branding"), 303)
    return _branding(422, accent=form)


@bp.post("/accent/reset")
@requires(Permission.TENANT_MANAGE)
def reset_accent():
    if branding.set_accent(current(), None):
        flash("The accent colour is back to the portal's own.", "success")
    return redirect(url_for(".branding"), 303)


@bp.post("/delete")
@requires(Permission.TENANT_MANAGE)
def delete():
    """Asks for the deletion (password again, and the address typed): read-only at once, purged
    after the grace period."""
    ctx = current()
    form = DeleteForm()
    if form.validate():
        try:
            services.request_deletion(ctx, form.password.data, form.confirm.data)
        except RuleViolation as exc:
            db.session.rollback()
            getattr(form, exc.field or "confirm").errors.append(exc.message)
        else:
            flash(f"{ctx.tenant.name} will be deleted on {ctx.tenant.purge_after:%Y-%m-%d}. Every member has been "
                  "told; any owner can cancel until then.", "success")
            return redirect(url_for("dashboard.index"), 303)
    return _section("danger", 422, delete=form)


@bp.post("/cancel-deletion")
@requires(Permission.TENANT_VIEW)
@works_read_only
def cancel_deletion():
    """Any owner, while the tenant waits (it is read-only then: this is the change it accepts)."""
    ctx = current()
    try:
        services.cancel_deletion(ctx)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash(f"The deletion of {ctx.tenant.name} is cancelled.", "success")
    return redirect(url_for("dashboard.index"), 303)


@bp.post("/onboarding/dismiss")
@requires(Permission.TENANT_MANAGE)
def dismiss_onboarding():
    services.dismiss_onboarding(current())
    flash("The first steps are hidden. Everything stays in Settings.", "success")
    return redirect(url_for("dashboard.index"), 303)


@bp.get("/danger")
@requires(Permission.TENANT_MANAGE)
def danger():
    """Deleting the organization (or, while it waits, cancelling that); where to hand it over."""
    return _section("danger", delete=DeleteForm(formdata=None))


@bp.route("/export", methods=["GET", "POST"])
@requires(Permission.TENANT_MANAGE)
def export():
    """POST queues a full export. GET is the section, or for htmx only the export's progress (the
    section polls it while the worker prepares the file): one URL, two renderings."""
    ctx = current()
    if request.method == "POST":
        try:
            services.request_export(ctx)
        except RuleViolation as exc:
            db.session.rollback()
            flash(exc.message, "error")
        else:
            flash("The export is being prepared. You will get an email with a link when it is ready.", "success")
        if not htmx:
            return redirect(url_for(".export"), 303)
    if not htmx:
        return _section("export", export=services.latest_export(ctx))
    return render_template("organization/_export.html", export=services.latest_export(ctx))


@bp.get("/exports/<token>")
@requires(Permission.TENANT_MANAGE)
def download(token: str):
    """The emailed link: the zip, for 24 hours, to those who may manage the organization."""
    ctx = current()
    found = services.export_by_token(ctx, token)
    path = file_of(found) if found is not None else None
    if path is None or not path.exists():
        abort(410, "This export link has expired or is not valid. Ask for a new export from the settings page.")
    audit.record(ctx.tenant_id, ctx.user_id, "tenant.export_download", "tenant_export", found.id)
    return send_file(path, mimetype="application/zip", as_attachment=True,
                     download_name=f"{ctx.tenant.slug}-export-{found.created_at:%Y%m%d}.zip", max_age=0)
