"""/invitations/<token>: GET shows the invitation and consumes nothing (mail scanners
prefetch links); POST accepts, declines, or creates the account and accepts."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from ..accounts.services import create_user, find_user_by_email
from ..database.context import set_context
from ..extensions import db, htmx
from ..rules import RuleViolation
from ..security import login as sign_in
from ..security import passwords
from . import services
from .forms import SignUpForm

bp = Blueprint("accept", __name__)


def _private(response):
    """Token pages: no referrer leaks the token, no cache keeps it."""
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


bp.after_request(_private)


def _situation(found) -> str:
    if not current_user.is_authenticated:
        return "sign_in" if find_user_by_email(found.invitation.email) else "sign_up"
    same = current_user.email.lower() == found.invitation.email.lower()
    return "accept" if same else "wrong_account"


def _card(token, found, form=None, error=None, status=200):
    template = "invitations/_accept_card.html" if htmx else "invitations/accept.html"
    return render_template(template, token=token, found=found, situation=_situation(found),
                           form=form or SignUpForm(), error=error), status


def _invalid():
    # The same page for unknown, expired, cancelled, declined or used tokens: it names no tenant.
    template = "invitations/_invalid.html" if htmx else "invitations/invalid.html"
    return render_template(template), 410


@bp.get("/invitations/<token>")
def show(token: str):
    found = services.find_by_token(token)
    if found is None or not found.usable:
        return _invalid()
    return _card(token, found)


@bp.post("/invitations/<token>")
def respond(token: str):
    found = services.find_by_token(token)
    if found is None or not found.usable:
        return _invalid()
    action = request.form.get("action")
    try:
        if action == "decline":
            services.decline(found, current_user if current_user.is_authenticated else None)
            flash(f"You declined the invitation to {found.tenant.name}.", "info")
            return _go(url_for("accounts.root"))
        if action == "sign_up" and _situation(found) == "sign_up":
            return _sign_up(token, found)
        if action == "accept" and _situation(found) == "accept":
            services.accept(found, current_user)
            return _welcome(found)
    except RuleViolation as exc:
        db.session.rollback()
        return _card(token, found, error=exc.message, status=422)
    return _card(token, found, error="Please choose one of the options below.", status=422)


def _sign_up(token, found):
    form = SignUpForm()
    if form.validate():
        issue = passwords.problem(form.password.data, email=found.invitation.email, name=form.name.data)
        if issue:
            form.password.errors.append(issue)
    if form.errors:
        return _card(token, found, form=form, status=422)
    try:
        with db.session.begin_nested():
            user = create_user(found.invitation.email, form.name.data, form.password.data)
    except IntegrityError:
        return _card(token, found, error="An account with this email now exists: sign in to accept.", status=422)
    # Following the emailed link proves the address.
    user.email_verified_at = db.func.now()
    set_context(db.session, user_id=user.id)
    services.accept(found, user)
    sign_in.complete(user, "invitation")
    return _welcome(found)


def _welcome(found):
    flash(f"Welcome to {found.tenant.name}.", "success")
    return _go(url_for("dashboard.index", tenant_slug=found.tenant.slug))


def _go(target: str):
    if htmx:
        return "", 200, {"HX-Redirect": target}
    return redirect(target, 303)
