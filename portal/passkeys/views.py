"""Passkey pages and the JSON they hand to static/passkeys.js.

Each ceremony is two requests: POST .../options answers JSON for navigator.credentials (and
stores the challenge), then the page posts the browser's answer in an ordinary form (CSRF
field, 303 after, flash messages). The account's list lives in the account's security section
(templates/passkeys/_section.html, included by templates/profile/security.html); sign-in's
button and autofill in templates/passkeys/_signin.html (included by /login); the second
factor in templates/passkeys/_second_factor.html; re-authentication in _confirm.html."""
from __future__ import annotations

import time
from uuid import UUID

from flask import Blueprint, current_app, flash, g, jsonify, redirect, request, session, url_for
from flask_login import current_user, login_required

from .. import ui
from ..accounts import lifecycle
from ..accounts.models import User
from ..database.context import user_scope
from ..extensions import db, limiter
from ..profile.views import fresh_auth_required
from ..redirects import safe_next
from ..rules import RuleViolation
from ..security import events, login as sign_in, sessions
from . import relying_party, services
from .forms import CredentialForm, NewPasskeyForm, RenameForm

bp = Blueprint("passkeys", __name__)
NO_ANSWER = ("Your browser sent no passkey. Passkeys need JavaScript and a browser that supports them; "
             "use your password instead.")
SECOND_FACTOR_SECONDS = 300  # as portal.signin.views: the password step's pending state


def _login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


def _failed(_response) -> bool:
    # Failures answer with a redirect (and a flash), so the view says when one happened.
    return bool(g.get("passkey_failed"))


def _refused(message: str, target: str):
    g.passkey_failed = True
    flash(message, "error")
    return redirect(target, 303)


def _json_error(message: str, status: int = 400):
    return jsonify(error=message), status


def _options(make):
    try:
        return jsonify(publicKey=make())
    except services.PasskeyError as exc:
        return _json_error(exc.message, 409)
    except RuleViolation as exc:
        return _json_error(exc.message, 409)


# Template helpers ---------------------------------------------------------------------------

@bp.app_template_global()
def passkey_settings() -> dict:
    """What the passkey markup needs: whether passkeys can work here, and the relying party."""
    return {"available": services.available(), "rp_id": relying_party.rp_id() or ""}


@bp.app_template_global()
def my_passkeys() -> dict:
    """The signed-in user's passkeys for the account's security section."""
    passkeys = services.passkeys_of(current_user.id)
    form = NewPasskeyForm(formdata=None)
    # Left empty, the name is the browser's ("Chrome 131 on Linux"): the placeholder says so.
    form.name.render_kw = {**(form.name.render_kw or {}), "placeholder": ui.browser_name(request.user_agent.string)}
    return {"passkeys": passkeys, "removable": services.can_remove(current_user, len(passkeys)), "form": form,
            **passkey_settings()}


@bp.app_template_global()
def pending_passkeys() -> int:
    """How many passkeys the account waiting at the second-factor step has (read as that
    account: its password is proved, its session not yet made)."""
    user = _pending_user()
    if user is None:
        return 0
    with user_scope(db.session, user.id):
        return services.count(user.id)


@bp.app_template_global()
def my_passkey_count() -> int:
    return services.count(current_user.id) if current_user.is_authenticated else 0


# The account: add, rename, remove -----------------------------------------------------------

@bp.post("/account/passkeys/options")
@login_required
def registration_options():
    if not sessions.recently_authenticated(current_app.config["REAUTH_MINUTES"]):
        # The page goes to the confirmation and comes back to the list afterwards.
        flash("Please confirm it is you first.", "info")
        return jsonify(error="Please confirm it is you first.", redirect=url_for(
            "profile.confirm", next=url_for("profile.security", _anchor="passkeys"))), 401
    return _options(lambda: services.registration_options(current_user))


@bp.post("/account/passkeys")
@limiter.limit(_login_limit, deduct_when=_failed)
@login_required
@fresh_auth_required
def add():
    back = url_for("profile.security", _anchor="passkeys")
    form = NewPasskeyForm()
    if not form.validate():
        errors = form.name.errors or form.credential.errors or ["Your form expired. Please try again."]
        return _refused(errors[0], back)
    if not form.credential.data:
        return _refused(NO_ANSWER, back)
    try:
        passkey = services.register(current_user, form.credential.data, form.name.data,
                                    fallback_name=ui.browser_name(request.user_agent.string))
    except (services.PasskeyError, RuleViolation) as exc:
        db.session.rollback()
        return _refused(exc.message, back)
    flash(f"Passkey \u201c{passkey.friendly_name}\u201d added. You can sign in with it now.", "success")
    return redirect(back, 303)


@bp.post("/account/passkeys/<uuid:passkey_id>/rename")
@login_required
def rename(passkey_id: UUID):
    back = url_for("profile.security", _anchor="passkeys")
    form = RenameForm()
    if not form.validate():
        errors = form.name.errors or ["Your form expired. Please try again."]
        return _refused(errors[0], back)
    try:
        passkey = services.rename(current_user, passkey_id, form.name.data)
    except RuleViolation as exc:
        db.session.rollback()
        return _refused(exc.message, back)
    flash(f"Passkey renamed to \u201c{passkey.friendly_name}\u201d.", "success")
    return redirect(back, 303)


@bp.post("/account/passkeys/<uuid:passkey_id>/remove")
@login_required
@fresh_auth_required
def remove(passkey_id: UUID):
    back = url_for("profile.security", _anchor="passkeys")
    try:
        name = services.remove(current_user, passkey_id)
    except RuleViolation as exc:
        db.session.rollback()
        return _refused(exc.message, back)
    flash(f"Passkey \u201c{name}\u201d removed. Remove it from the device too, or it will keep offering it.",
          "success")
    return redirect(back, 303)


# Re-authentication with a passkey (instead of the password) ---------------------------------

@bp.post("/account/passkeys/confirm/options")
@login_required
def reauth_options():
    return _options(lambda: services.authentication_options("reauth", current_user))


@bp.post("/account/passkeys/confirm")
@limiter.limit(_login_limit, deduct_when=_failed)
@login_required
def reauth():
    target = safe_next(request.args.get("next")) or url_for("profile.profile")
    form = CredentialForm()
    if not form.validate() or not form.credential.data:
        return _refused(NO_ANSWER, url_for("profile.confirm", next=target))
    try:
        services.verify_assertion("reauth", form.credential.data, current_user)
    except services.PasskeyError as exc:
        db.session.rollback()
        events.record(current_user.email, success=False, reason="bad_reauth", user_id=current_user.id,
                      method="reauth")
        return _refused(exc.message, url_for("profile.confirm", next=target))
    sessions.mark_reauthenticated()
    return redirect(target, 303)


# Sign-in with a passkey alone ---------------------------------------------------------------

@bp.post("/login/passkey/options")
@limiter.limit("60 per minute")
def signin_options():
    """Options for the button and for the browser's autofill (conditional mediation)."""
    return _options(lambda: services.authentication_options("signin"))


def _signin_failed(exc: services.PasskeyError, user: User | None, back: str):
    db.session.rollback()
    events.record(user.email if user else "", success=False, reason=exc.reason,
                  user_id=user.id if user else None, method="passkey")
    return _refused(exc.message, back)


@bp.post("/login/passkey")
@limiter.limit(_login_limit, deduct_when=_failed)
def signin():
    target = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(target or sign_in.home_for(current_user), 303)
    back = url_for("accounts.login", next=target) if target else url_for("accounts.login")
    form = CredentialForm()
    if not form.validate() or not form.credential.data:
        return _refused(NO_ANSWER, back)
    try:
        verified = services.verify_assertion("signin", form.credential.data)
    except services.PasskeyError as exc:
        return _signin_failed(exc, None, back)
    user = db.session.get(User, verified.user.id)
    # A verified passkey proves the person as a password does: they may be told why (accounts.lifecycle).
    refused = lifecycle.refusal(user) or (None if user.is_active else ("disabled", "This account cannot sign in."))
    if refused:
        db.session.rollback()
        events.record(user.email, success=False, reason=refused[0], user_id=user.id, method="passkey")
        return _refused(refused[1], back)
    # A passkey with user verification is two factors on its own: no TOTP step after it.
    sign_in.complete(user, "passkey")
    return redirect(target or sign_in.home_for(user), 303)


# A passkey as the second factor after the password -----------------------------------------

def _pending_user() -> User | None:
    pending = session.get("second_factor") or {}
    if not pending or time.time() - pending.get("at", 0) >= SECOND_FACTOR_SECONDS:
        return None
    try:
        user = db.session.get(User, UUID(pending["user"]))
    except (KeyError, ValueError, TypeError):
        return None
    return user if user is not None and user.is_active else None


@bp.post("/login/verify/passkey/options")
def second_factor_options():
    user = _pending_user()
    if user is None:
        return jsonify(error="Please sign in again.", redirect=url_for("accounts.login")), 401
    with user_scope(db.session, user.id):  # the pending account's passkeys and its challenge
        return _options(lambda: services.authentication_options("second_factor", user))


@bp.post("/login/verify/passkey")
@limiter.limit(_login_limit, deduct_when=_failed)
def second_factor():
    user = _pending_user()
    if user is None:
        session.pop("second_factor", None)
        flash("Please sign in again.", "info")
        return redirect(url_for("accounts.login"), 303)
    pending = session["second_factor"]
    form = CredentialForm()
    if not form.validate() or not form.credential.data:
        return _refused(NO_ANSWER, url_for("accounts.second_factor"))
    try:
        services.verify_assertion("second_factor", form.credential.data, user)
    except services.PasskeyError as exc:
        return _signin_failed(exc, user, url_for("accounts.second_factor"))
    sign_in.complete(user, f"{pending.get('method', 'password')}+passkey")
    return redirect(pending.get("next") or sign_in.home_for(user), 303)
