"""/t/<slug>/invitations: invite by email, list by status, resend and cancel."""
from __future__ import annotations

from uuid import UUID

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from ..extensions import db, htmx
from ..rules import RuleViolation
from ..sites.models import Site
from ..tenancy import Permission, current, requires, roles, tenant_blueprint
from . import queries, services
from .forms import InviteForm

bp = tenant_blueprint("invitations", __name__, "/invitations")


def _form(formdata=None) -> InviteForm:
    ctx = current()
    sites = db.session.scalars(select(Site).where(Site.tenant_id == ctx.tenant_id, Site.archived_at.is_(None))
                               .order_by(Site.name)).all()
    return InviteForm(formdata=formdata, roles=roles.assignable_roles(ctx), sites=sites)


def _page(form: InviteForm, status_code: int = 200):
    status = request.args.get("status", "pending")
    if status not in queries.FILTERS:
        status = "pending"
    rows, next_after, prev_before, pos = queries.invitation_page(
        current(), status, request.args.get("after", "")[:100], request.args.get("before", "")[:100])
    context = {"form": form, "rows": rows, "status": status, "filters": queries.FILTERS, "next_after": next_after,
               "prev_before": prev_before, "pos": pos, "undelivered": queries.undelivered(rows),
               "now": services.now(), "seats": services.seats_used(current().tenant)}
    if htmx and htmx.target == "invitation-list":
        return render_template("invitations/_invitation_list.html", **context), status_code
    return render_template("invitations/index.html", **context), status_code


@bp.get("/")
@requires(Permission.INVITATIONS_MANAGE)
def index():
    return _page(_form())


@bp.post("/")
@requires(Permission.INVITATIONS_MANAGE)
def create():
    form = _form(request.form)
    if form.validate():
        try:
            emails = services.parse_emails(form.emails.data)
            created = services.invite(current(), emails, roles.resolve(current().tenant_id, form.role.data),
                                      [UUID(s) for s in form.sites.data],
                                      [roles.resolve(current().tenant_id, k) for k in form.further_roles.data])
        except RuleViolation as exc:
            db.session.rollback()
            getattr(form, exc.field or "emails").errors.append(exc.message)
        else:
            flash(f"Invitation sent to {', '.join(i.email for i in created)}.", "success")
            return redirect(url_for(".index"), 303)
    return _page(form, 422)


def _act(invitation_id: UUID, action, success: str):
    invitation = services.get_invitation(current(), invitation_id) or abort(404)
    try:
        action(invitation)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash(success.format(email=invitation.email), "success")
    return redirect(url_for(".index", status=request.args.get("status", "pending")), 303)


@bp.post("/<uuid:invitation_id>/resend")
@requires(Permission.INVITATIONS_MANAGE)
def resend(invitation_id: UUID):
    return _act(invitation_id, lambda i: services.resend(current(), i),
                "Invitation sent again to {email}; the previous link no longer works.")


@bp.post("/<uuid:invitation_id>/cancel")
@requires(Permission.INVITATIONS_MANAGE)
def cancel(invitation_id: UUID):
    return _act(invitation_id, lambda i: services.cancel(current(), i),
                "Invitation to {email} cancelled.")
