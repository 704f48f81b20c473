"""/t/<slug>/members: the member list, with inline (htmx) role, status and removal changes."""
from __future__ import annotations

from uuid import UUID

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from ..extensions import db, htmx
from ..rules import RuleViolation
from ..sites.queries import site_access
from ..tenancy import requires, tenant_blueprint
from ..tenancy.permissions import Permission
from . import services
from .forms import RoleForm
from .models import MembershipRole, MembershipStatus

bp = tenant_blueprint("members", __name__, "/members")


def _target_or_404(user_id: UUID):
    return services.get_membership(g.tenant, user_id) or abort(404)


def _row(membership, error: str | None = None, status: int = 200):
    return render_template("members/_member_row.html", m=membership, error=error,
                           site_access=site_access(g.tenant.id, [membership.user_id])), status


@bp.get("/")
@requires(Permission.MEMBERS_VIEW)
def index():
    query = request.args.get("q", "").strip()[:100]
    members, next_after = services.list_members(g.tenant, query, request.args.get("after", ""))
    context = {"members": members, "q": query, "next_after": next_after,
               "site_access": site_access(g.tenant.id, [m.user_id for m in members])}
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
    if htmx:
        if result is None:  # removed: the row disappears
            return ""
        return _row(result)
    flash(success, "success")
    return redirect(url_for(".index"), 303)


@bp.post("/<uuid:user_id>/role")
@requires(Permission.MEMBERS_MANAGE)
def change_role(user_id: UUID):
    form = RoleForm()
    if not form.validate():
        abort(400, "Choose a valid role.")
    role = MembershipRole(form.role.data)
    return _act(user_id, lambda t: services.change_role(g.tenant, g.membership, t, role),
                f"Role changed to {role.value}.")


@bp.post("/<uuid:user_id>/suspend")
@requires(Permission.MEMBERS_MANAGE)
def suspend(user_id: UUID):
    return _act(user_id, lambda t: services.set_status(g.tenant, g.membership, t, MembershipStatus.SUSPENDED),
                "Member suspended: they lost access to this organization.")


@bp.post("/<uuid:user_id>/reactivate")
@requires(Permission.MEMBERS_MANAGE)
def reactivate(user_id: UUID):
    return _act(user_id, lambda t: services.set_status(g.tenant, g.membership, t, MembershipStatus.ACTIVE),
                "Member reactivated.")


@bp.post("/<uuid:user_id>/remove")
@requires(Permission.MEMBERS_MANAGE)
def remove(user_id: UUID):
    return _act(user_id, lambda t: services.remove(g.tenant, g.membership, t), "Member removed.")


@bp.post("/<uuid:user_id>/transfer")
@requires(Permission.MEMBERS_MANAGE)
def transfer(user_id: UUID):
    target = _target_or_404(user_id)
    try:
        services.transfer_ownership(g.tenant, g.membership, target)
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
        services.leave(g.tenant, g.membership)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".index"), 303)
    flash(f"You left {g.tenant.name}.", "success")
    current_user.last_tenant_id = None
    target = url_for("accounts.root")
    if htmx:
        return "", 200, {"HX-Redirect": target}
    return redirect(target, 303)
