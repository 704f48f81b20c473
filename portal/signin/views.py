"""/login (the password, then the second factor when the account has one), /logout and /."""
from __future__ import annotations

import time
from uuid import UUID

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, logout_user

from ..accounts.models import User
from ..accounts.services import check_password, normalise_email
from ..extensions import db, limiter
from ..redirects import safe_next
from ..security import events, login as sign_in, mfa, sessions, throttle
from ..sso import policy as sso_policy
from .forms import LoginForm, SecondFactorForm

bp = Blueprint("accounts", __name__)
GENERIC_FAILURE = "That email and password do not match an account."
SECOND_FACTOR_SECONDS = 300


def _login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


def _failed(response) -> bool:
    # Only failures count against a client address: a busy office signing in is fine.
    return response.status_code >= 400


def _throttled(form, email: str):
    wait = throttle.retry_after(email)
    if not wait:
        return None
    events.record(email, success=False, reason="throttled")
    form.password.errors.append(f"Too many failed attempts for this account. Try again in {wait // 60 + 1} "
                                "minutes, or reset your password.")
    return render_template("accounts/login.html", form=form), 429, {"Retry-After": str(wait)}


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], deduct_when=_failed)
def login():
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")) or sign_in.home_for(current_user), 303)
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("accounts/login.html", form=form), 400 if form.errors else 200
    email = normalise_email(form.email.data)
    throttled = _throttled(form, email)
    if throttled:
        return throttled
    user, reason = check_password(email, form.password.data)
    if reason != "ok":
        events.record(email, success=False, reason="bad_password" if reason != "disabled" else "disabled",
                      user_id=user.id if user else None)
        form.password.errors.append(GENERIC_FAILURE)
        return render_template("accounts/login.html", form=form), 401
    target = safe_next(request.args.get("next"))
    refused = sso_policy.password_refusal(user)  # an organization may require its single sign-on
    if refused:
        events.record(email, success=False, reason="sso_required", user_id=user.id)
        form.password.errors.append(refused)
        return render_template("accounts/login.html", form=form, sso_url=sso_policy.sso_url(email, target)), 403
    if user.has_mfa:
        session.clear()
        session["second_factor"] = {"user": str(user.id), "at": time.time(), "next": target}
        sso_policy.flash_warning()
        return redirect(url_for("accounts.second_factor"), 303)
    sign_in.complete(user, "password")
    sso_policy.flash_warning()
    return redirect(target or sign_in.home_for(user), 303)


@bp.route("/login/verify", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], deduct_when=_failed)
def second_factor():
    pending = session.get("second_factor") or {}
    user = None
    if pending and time.time() - pending.get("at", 0) < SECOND_FACTOR_SECONDS:
        user = db.session.get(User, UUID(pending["user"]))
    if user is None or not user.is_active or not user.has_mfa:
        session.pop("second_factor", None)
        flash("Please sign in again.", "info")
        return redirect(url_for("accounts.login"), 303)
    form = SecondFactorForm()
    if not form.validate_on_submit():
        return render_template("accounts/second_factor.html", form=form), 400 if form.errors else 200
    # The password's limit spares a known browser; the second factor's own limit spares none.
    wait = max(throttle.retry_after(user.email), throttle.second_factor_retry_after(user.email))
    if wait:
        events.record(user.email, success=False, reason="throttled", user_id=user.id)
        form.code.errors.append(f"Too many failed attempts. Try again in {wait // 60 + 1} minutes.")
        return render_template("accounts/second_factor.html", form=form), 429, {"Retry-After": str(wait)}
    method = mfa.verify(user, form.code.data)
    if method is None:
        events.record(user.email, success=False, reason="bad_second_factor", user_id=user.id)
        form.code.errors.append("That code is not valid. Codes change every 30 seconds; each works once.")
        return render_template("accounts/second_factor.html", form=form), 401
    sign_in.complete(user, f"{pending.get('method', 'password')}+{method}")
    if method == "backup_code":
        flash(f"You used a backup code; {mfa.remaining_backup_codes(user)} remain.", "info")
    return redirect(pending.get("next") or sign_in.home_for(user), 303)


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        events.security("signout", current_user)
    sessions.end_current()
    logout_user()
    flash("You are signed out.", "info")
    # "Sign out and continue" from an invitation for another address comes back to it.
    return redirect(url_for("accounts.login", next=safe_next(request.form.get("next"))), 303)


@bp.get("/")
def root():
    if current_user.is_authenticated:
        return redirect(sign_in.home_for(current_user), 303)
    return redirect(url_for("accounts.login"), 303)
