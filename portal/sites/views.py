"""/t/<slug>/sites: the site list, site pages, site management and site assignments."""
from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit
from uuid import UUID

from flask import abort, flash, make_response, redirect, render_template, request, url_for

from ..extensions import db, htmx
from ..rules import RuleViolation
from ..tenancy import Permission, can, current, requires, tenant_blueprint
from ..tenancy.limits import room_left
from ..tenancy.models import Membership
from ..timezones import sorted_names, zone
from . import queries, services
from .forms import DAY_NAMES, AssignmentForm, SiteForm

bp = tenant_blueprint("sites", __name__, "/sites")


def _site_or_404(site_id: UUID):
    return queries.get_site_or_404(current(), site_id)


def _local_back(target: str | None, fallback: str) -> str:
    """Only a path of this tenant: never redirect elsewhere after an action."""
    parts = urlsplit(target or "")
    if target and not parts.scheme and not parts.netloc and target.startswith(f"/t/{current().tenant.slug}/"):
        return target
    return fallback


@bp.get("/")
@requires(Permission.SITES_VIEW)
def index():
    archived = request.args.get("archived") == "1"
    ctx = current()
    rows, next_after, prev_before, pos = queries.site_page(ctx, after=request.args.get("after", "")[:200],
                                                           before=request.args.get("before", "")[:200],
                                                           archived=archived)
    # At the plan's limit the New site button says why it is off (the service refuses anyway).
    room = room_left(ctx.tenant, "max_sites", services.active_sites(ctx.tenant_id)) if ctx.can(Permission.SITES_WRITE) else None
    return render_template("sites/index.html", rows=rows, next_after=next_after, prev_before=prev_before, pos=pos,
                           archived=archived, room=room)


def _form_page(form: SiteForm, site=None, status: int = 200):
    return render_template("sites/form.html", form=form, site=site, timezones=sorted_names(),
                           day_names=DAY_NAMES), status


def _save(form: SiteForm, action, site=None):
    """Validate, run the service, redirect to the site; re-render with inline errors otherwise."""
    if not form.validate_on_submit():
        return _form_page(form, site, 422 if request.method == "POST" else 200)
    try:
        saved = action(form.to_data())
    except RuleViolation as exc:
        db.session.rollback()
        getattr(form, exc.field or "name").errors.append(exc.message)
        return _form_page(form, site, 422)
    flash(f"Saved {saved.name}.", "success")
    return redirect(url_for(".show", site_id=saved.id), 303)


@bp.route("/new", methods=["GET", "POST"])
@requires(Permission.SITES_WRITE)
def create():
    return _save(SiteForm(), lambda data: services.create_site(current(), data))


@bp.get("/<uuid:site_id>")
@requires(Permission.SITES_VIEW)
def show(site_id: UUID):
    site = _site_or_404(site_id)
    if htmx.target == "site-members":
        # The member panel's pages and searches: the panel alone, not the page around it.
        response = make_response(render_template("sites/_site_members.html", **_members_panel(site, request.args)))
        response.vary.add("HX-Target")
        return response
    local_now = datetime.now(zone(site.timezone))
    return render_template("sites/show.html", local_now=local_now, day_names=DAY_NAMES,
                           devices=queries.site_devices(site), device_count=queries.site_device_count(site),
                           **_members_panel(site, request.args))


def _members_panel(site, values, **extra) -> dict:
    """What sites/_site_members.html needs: a page of members under the panel's filter."""
    members = queries.MemberFilter.from_values(values, may_manage=can(Permission.SITES_ASSIGN))
    assignees, next_after = queries.site_members(site, members)
    return {"site": site, "members": members, "assignees": assignees, "next_after": next_after, **extra}


@bp.route("/<uuid:site_id>/edit", methods=["GET", "POST"])
@requires(Permission.SITES_WRITE)
def edit(site_id: UUID):
    site = _site_or_404(site_id)
    form = SiteForm() if request.method == "POST" else SiteForm.for_site(site)
    return _save(form, lambda data: services.update_site(current(), site, data), site)


def _lifecycle(site_id: UUID, action, done: str):
    site = _site_or_404(site_id)
    try:
        action(current(), site)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".show", site_id=site_id), 303)
    flash(done.format(name=site.name), "success")
    return redirect(url_for(".index") if action is services.delete_site else url_for(".show", site_id=site_id), 303)


@bp.post("/<uuid:site_id>/archive")
@requires(Permission.SITES_WRITE)
def archive(site_id: UUID):
    return _lifecycle(site_id, services.archive_site, "Archived {name}.")


@bp.post("/<uuid:site_id>/restore")
@requires(Permission.SITES_WRITE)
def restore(site_id: UUID):
    return _lifecycle(site_id, services.restore_site, "Restored {name}.")


@bp.post("/<uuid:site_id>/delete")
@requires(Permission.SITES_WRITE)
def delete(site_id: UUID):
    return _lifecycle(site_id, services.delete_site, "Deleted {name}.")


def _member_sites(user_id: UUID, *, error: str | None = None, next_url: str = "", status: int = 200):
    return render_template("sites/_member_sites.html", member_user_id=user_id, error=error, next_url=next_url,
                           site_access=queries.site_access(current().tenant_id, [user_id]), open_details=True), status


def _change_assignment(site_id: UUID, service, done: str):
    """Assign or unassign one member; htmx gets back the fragment it came from."""
    site = _site_or_404(site_id)
    form = AssignmentForm()
    try:
        user_id = UUID(form.user_id.data or "")
    except ValueError:
        abort(400, "Choose a member of this organization.")
    if not form.validate():
        abort(400, "Choose a member of this organization.")
    error = None
    try:
        service(current(), site, user_id)
    except RuleViolation as exc:
        db.session.rollback()
        error = exc.message
    status = 422 if error else 200
    if htmx and not error:
        flash(done.format(site=site.name), "success")  # a toast (portal.ui)
    if htmx and form.fragment.data == "member":
        return _member_sites(user_id, error=error, next_url=form.next.data or "", status=status)
    if htmx:
        site = _site_or_404(site_id)  # reloaded: the rollback above expired it
        # The panel comes back as it was: same search, filter and page (sent with the form).
        return render_template("sites/_site_members.html", **_members_panel(site, request.form, error=error)), status
    if error:
        flash(error, "error")
    else:
        flash(done.format(site=site.name), "success")
    return redirect(_local_back(form.next.data, url_for(".show", site_id=site_id)), 303)


@bp.post("/<uuid:site_id>/assignments")
@requires(Permission.SITES_ASSIGN)
def assign(site_id: UUID):
    return _change_assignment(site_id, services.assign_user_to_site, "Assigned to {site}.")


@bp.post("/<uuid:site_id>/unassign")
@requires(Permission.SITES_ASSIGN)
def unassign(site_id: UUID):
    return _change_assignment(site_id, services.unassign_user_from_site, "Unassigned from {site}.")


@bp.get("/members/<uuid:user_id>")
@requires(Permission.SITES_ASSIGN)
def member_sites(user_id: UUID):
    """One member's site toggles: the fragment a member row includes, or a page of its own."""
    membership = db.session.scalar(db.select(Membership).where(Membership.tenant_id == current().tenant_id,
                                                               Membership.user_id == user_id)) or abort(404)
    if htmx:
        return _member_sites(user_id)
    return render_template("sites/member_sites.html", membership=membership, member_user_id=user_id,
                           site_access=queries.site_access(current().tenant_id, [user_id]), open_details=True,
                           next_url=request.full_path)
