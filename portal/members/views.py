"""/t/<slug>/members: the member list, with inline (htmx) role, status and removal changes."""
from __future__ import annotations

from uuid import UUID

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..extensions import db, htmx
from ..rules import RuleViolation
from ..sites.queries import site_access
from ..tenancy import Permission, current, requires, roles, tenant_blueprint
from ..tenancy.models import MembershipStatus
from . import services
from .forms import FurtherRolesForm, RoleForm

bp = tenant_blueprint("members", __name__, "/members")


def _target_or_404(user_id: UUID):
    return services.get_membership(current(), user_id) or abort(404)


def _row(membership, error: str | None = None, status: int = 200):
    return render_template("members/_member_row.html", m=membership, error=error,
                           site_access=site_access(current().tenant_id, [membership.user_id]),
                           assignable=roles.assignable_roles(current())), status


@bp.get("/")
@requires(Permission.MEMBERS_VIEW)
def index():
    query = request.args.get("q", "").strip()[:100]
    ctx = current()
    members, next_after, prev_before = services.list_members(
        ctx, query, request.args.get("after", "")[:320], request.args.get("before", "")[:320])
    total, before = services.count_members(ctx, query, members[0].user.email if members else None)
    context = {"members": members, "q": query, "next_after": next_after, "prev_before": prev_before,
               "total": total, "first": before + 1,
               "site_access": site_access(ctx.tenant_id, [m.user_id for m in members]),
               "assignable": roles.assignable_roles(ctx)}
    if htmx and htmx.target == "member-table":
        return render_template("members/_member_table.html", **context)
    return render_template("members/index.html", **context)


def _act(user_id: UUID, action, success: str):
    """Run one membership change; htmx gets the row back, a browser a redirect."""
    target = _target_or_404(user_id)
    try:
        result = action(target)
    except RuleViolation as exc:
        db.session.rollback()
        if htmx:
            return _row(_target_or_404(user_id), exc.message, 422)
        flash(exc.message, "error")
        return redirect(url_for(".index"), 303)
    flash(success, "success")  # for htmx, a toast (portal.ui)
    if htmx:
        if result is None:  # removed: the row disappears
            return ""
        return _row(result)
    return redirect(url_for(".index"), 303)


@bp.post("/<uuid:user_id>/role")
@requires(Permission.MEMBERS_MANAGE)
def change_role(user_id: UUID):
    ctx = current()
    form = RoleForm()
    role = roles.resolve(ctx.tenant_id, form.role.data) if form.validate() else None
    if role is None:
        abort(400, "Choose one of this organization's roles.")
    return _act(user_id, lambda t: services.change_role(ctx, t, role), f"Role changed to {role.name}.")


@bp.post("/<uuid:user_id>/further-roles")
@requires(Permission.MEMBERS_MANAGE)
def further_roles(user_id: UUID):
    ctx = current()
    form = FurtherRolesForm()
    if not form.validate():
        abort(400, "Choose among this organization's custom roles.")
    keys = list(dict.fromkeys(form.roles.data or []))[:100]
    chosen = [roles.resolve(ctx.tenant_id, key) for key in keys]
    if any(r is None for r in chosen):
        abort(400, "Choose among this organization's custom roles.")
    return _act(user_id, lambda t: services.set_further_roles(ctx, t, chosen), "Roles saved.")


@bp.post("/<uuid:user_id>/suspend")
@requires(Permission.MEMBERS_MANAGE)
def suspend(user_id: UUID):
    return _act(user_id, lambda t: services.set_status(current(), t, MembershipStatus.SUSPENDED),
                "Member suspended: they lost access to this organization.")


@bp.post("/<uuid:user_id>/reactivate")
@requires(Permission.MEMBERS_MANAGE)
def reactivate(user_id: UUID):
    return _act(user_id, lambda t: services.set_status(current(), t, MembershipStatus.ACTIVE),
                "Member reactivated.")


@bp.post("/<uuid:user_id>/remove")
@requires(Permission.MEMBERS_MANAGE)
def remove(user_id: UUID):
    return _act(user_id, lambda t: services.remove(current(), t), "Member removed.")


@bp.post("/<uuid:user_id>/transfer")
@requires(Permission.MEMBERS_MANAGE)
def transfer(user_id: UUID):
    target = _target_or_404(user_id)
    try:
        services.transfer_ownership(current(), target)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".index"), 303)
    flash(f"{target.user.display_name} is now the owner; you are an admin.", "success")
    if htmx:
        return "", 200, {"HX-Redirect": url_for(".index")}
    return redirect(url_for(".index"), 303)


@bp.post("/leave")
@requires(Permission.TENANT_VIEW)
def leave():
    try:
        services.leave(current())
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".index"), 303)
    flash(f"You left {current().tenant.name}.", "success")
    current_user.last_tenant_id = None
    target = url_for("accounts.root")
    if htmx:
        return "", 200, {"HX-Redirect": target}
    return redirect(target, 303)
