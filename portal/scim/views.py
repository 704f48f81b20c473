"""/t/<slug>/settings/provisioning: the organization's SCIM tokens (sso:manage, owners by
default), a section of the settings beside Single sign-on. A new or rotated token is shown once
(POST-redirect-GET through ui.keep_secret), then only its name and dates."""
from __future__ import annotations

from uuid import UUID

from flask import abort, flash, redirect, render_template, request, url_for

from .. import ui
from ..extensions import db
from ..organization.views import SECTIONS
from ..rules import RuleViolation
from ..tenancy import Permission, current, requires, tenant_blueprint
from . import services
from .forms import TokenForm
from .resources import base_url

bp = tenant_blueprint("provisioning", __name__, "/settings/provisioning")
SHOWN_ONCE = "scim_token"


def _page(form: TokenForm | None = None, status: int = 200):
    ctx = current()
    kept = ui.take_secret(f"{SHOWN_ONCE}:{ctx.tenant_id}") if request.method == "GET" else None
    response = render_template("scim/provisioning.html", sections=SECTIONS, section="provisioning.index",
                               tokens=services.list_tokens(ctx), form=form or TokenForm(formdata=None),
                               kept=kept, scim_url=base_url(), counts=services.counts(ctx))
    return ui.no_store(response), status


def _token_or_404(token_id: UUID):
    return services.get_token(current(), token_id) or abort(404)


def _show(name: str, secret: str, rotated: bool = False):
    ui.keep_secret(f"{SHOWN_ONCE}:{current().tenant_id}", {"name": name, "secret": secret, "rotated": rotated})
    return redirect(url_for(".index"), 303)


@bp.get("")
@requires(Permission.SSO_MANAGE)
def index():
    return _page()


@bp.post("/tokens")
@requires(Permission.SSO_MANAGE)
def create():
    form = TokenForm()
    if not form.validate():
        return _page(form, 422)
    try:
        token, secret = services.create_token(current(), form.name.data)
    except RuleViolation as exc:
        db.session.rollback()
        form.name.errors.append(exc.message)
        return _page(form, 422)
    return _show(token.name, secret)


@bp.post("/tokens/<uuid:token_id>/rotate")
@requires(Permission.SSO_MANAGE)
def rotate(token_id: UUID):
    token = _token_or_404(token_id)
    try:
        secret = services.rotate_token(current(), token)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".index"), 303)
    return _show(token.name, secret, rotated=True)


@bp.post("/tokens/<uuid:token_id>/revoke")
@requires(Permission.SSO_MANAGE)
def revoke(token_id: UUID):
    token = _token_or_404(token_id)
    name = token.name
    try:
        services.revoke_token(current(), token)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash(f"Revoked {name}: the identity provider using it can no longer provision anyone.", "success")
    return redirect(url_for(".index"), 303)
