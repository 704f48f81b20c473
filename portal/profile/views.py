"""/account: name, email (re-verified), password, two-factor, sessions, sign-in history."""
from __future__ import annotations

from functools import wraps
from uuid import UUID

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, logout_user
from sqlalchemy import select

from ..accounts.passwords import verify_password
from ..extensions import db, limiter
from ..notifications import services as notification_services
from ..notifications.forms import preferences_form
from ..notifications.kinds import CATALOGUE, CHANNEL_LABELS
from ..redirects import safe_next
from ..rules import RuleViolation
from ..security import events, mfa, services, sessions, throttle, tokens
from ..security.models import TokenPurpose
from ..security.models import LoginEvent, SecurityEvent
from .forms import CodeForm, ConfirmForm, EmailForm, NameForm, PasswordForm

bp = Blueprint("profile", __name__, url_prefix="/account")
HISTORY = 20


@bp.before_request
@login_required
def _signed_in():
    pass


def fresh_auth_required(view):
    """Sensitive changes need the password (and second factor) again within REAUTH_MINUTES."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not sessions.recently_authenticated(current_app.config["REAUTH_MINUTES"]):
            target = request.full_path if request.method == "GET" else url_for(".index")
            flash("Please confirm it is you first.", "info")
            return redirect(url_for(".confirm", next=target), 303)
        return view(*args, **kwargs)
    return wrapped


def _page(status=200, **forms):
    context = {
        "name_form": forms.get("name_form") or NameForm(name=current_user.name),
        "email_form": forms.get("email_form") or EmailForm(),
        "password_form": forms.get("password_form") or PasswordForm(),
        "sessions": sessions.active_sessions(current_user.id),
        "current_session": sessions.current(),
        "history": db.session.scalars(select(LoginEvent).where(LoginEvent.user_id == current_user.id)
                                      .order_by(LoginEvent.created_at.desc()).limit(HISTORY)).all(),
        "backup_left": mfa.remaining_backup_codes(current_user) if current_user.has_mfa else 0,
        # Read through the security_events_self_read policy (app.user_id).
        "activity": db.session.scalars(select(SecurityEvent).where(SecurityEvent.user_id == current_user.id)
                                       .order_by(SecurityEvent.created_at.desc()).limit(HISTORY)).all(),
        "describe_event": events.describe,
        "notification_form": preferences_form(notification_services.preferences(current_user.id)),
        "security_kinds": [f"{info.label}: {CHANNEL_LABELS[info.default].lower()}"
                           for info in CATALOGUE.values() if info.security],
    }
    return render_template("profile/index.html", **context), status


@bp.get("/")
def index():
    return _page()


@bp.post("/name")
def change_name():
    form = NameForm()
    if not form.validate():
        return _page(422, name_form=form)
    current_user.name = form.name.data.strip()
    flash("Your name is saved.", "success")
    return redirect(url_for(".index"), 303)


@bp.post("/email")
@fresh_auth_required
def change_email():
    form = EmailForm()
    if form.validate():
        try:
            services.request_email_change(current_user, form.email.data)
        except RuleViolation as exc:
            db.session.rollback()
            form.email.errors.append(exc.message)
        else:
            flash(f"We sent a confirmation link to {form.email.data.strip().lower()}. "
                  "Your address changes when you open it.", "success")
            return redirect(url_for(".index"), 303)
    return _page(422, email_form=form)


@bp.route("/verify/<token>", methods=["GET", "POST"])
def verify_email(token: str):
    if request.method == "GET":
        record = tokens.find(token, TokenPurpose.VERIFY_EMAIL)
        if record is None or record.user_id != current_user.id:
            return render_template("profile/verify_invalid.html"), 410, {"Referrer-Policy": "no-referrer"}
        return render_template("profile/verify_email.html", new_email=record.new_email), 200, \
            {"Referrer-Policy": "no-referrer"}
    try:
        email = services.confirm_email_change(current_user, token)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".index"), 303)
    flash(f"Your email address is now {email}.", "success")
    return redirect(url_for(".index"), 303)


def _reauth_refused() -> str | None:
    """Re-entering the password (and code) is throttled like signing in, device cookie or not:
    a stolen session cannot guess either; wrong passwords and wrong codes count together."""
    wait = throttle.retry_after(current_user.email, trust_device=False)
    return f"Too many failed attempts. Try again in {wait // 60 + 1} minutes." if wait else None


def _reauth_failed() -> None:
    events.record(current_user.email, success=False, reason="bad_reauth", user_id=current_user.id,
                  method="reauth")


@bp.post("/password")
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"], deduct_when=lambda r: r.status_code >= 400)
def change_password():
    form = PasswordForm()
    if form.validate():
        refused = _reauth_refused()
        if refused:
            form.current.errors.append(refused)
            return _page(429, password_form=form)
        if not verify_password(current_user.password_hash, form.current.data):
            _reauth_failed()
            form.current.errors.append("That is not your current password.")
        else:
            try:
                services.set_password(current_user, form.password.data, keep_current_session=True)
            except RuleViolation as exc:
                db.session.rollback()
                form.password.errors.append(exc.message)
            else:
                sessions.mark_reauthenticated()
                flash("Password changed. Your other sessions were signed out.", "success")
                return redirect(url_for(".index"), 303)
    return _page(422, password_form=form)


@bp.route("/confirm", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"], methods=["POST"],
               deduct_when=lambda r: r.status_code >= 400)
def confirm():
    form = ConfirmForm()
    target = safe_next(request.args.get("next")) or url_for(".index")
    if form.validate_on_submit():
        refused = _reauth_refused()
        if refused:
            form.password.errors.append(refused)
            return render_template("profile/confirm.html", form=form), 429
        ok = verify_password(current_user.password_hash, form.password.data)
        if ok and current_user.has_mfa and not mfa.verify(current_user, form.code.data or ""):
            if (form.code.data or "").strip():  # a wrong code counts as at sign-in; a forgotten one guesses nothing
                events.record(current_user.email, success=False, reason="bad_second_factor",
                              user_id=current_user.id, method="reauth")
            form.code.errors.append("Enter a valid code from your authenticator app (or a backup code).")
        elif not ok:
            _reauth_failed()
            form.password.errors.append("That is not your password.")
        else:
            sessions.mark_reauthenticated()
            return redirect(target, 303)
        return render_template("profile/confirm.html", form=form), 401
    return render_template("profile/confirm.html", form=form), 400 if form.errors else 200


@bp.get("/two-factor")
@fresh_auth_required
def two_factor():
    if current_user.has_mfa:
        return render_template("profile/two_factor.html", enabled=True, form=CodeForm(),
                               backup_left=mfa.remaining_backup_codes(current_user))
    secret = session.get("totp_pending") or mfa.new_secret()
    session["totp_pending"] = secret
    return render_template("profile/two_factor.html", enabled=False, form=CodeForm(), secret=secret,
                           qr=mfa.qr_data_uri(secret, current_user.email))


@bp.post("/two-factor")
@fresh_auth_required
def enable_two_factor():
    form, secret = CodeForm(), session.get("totp_pending")
    if current_user.has_mfa or not secret:
        return redirect(url_for(".two_factor"), 303)
    if not form.validate() or not mfa.code_matches(secret, form.code.data):
        form.code.errors.append("That code does not match. Check the time on your phone and try the next code.")
        return render_template("profile/two_factor.html", enabled=False, form=form, secret=secret,
                               qr=mfa.qr_data_uri(secret, current_user.email)), 422
    codes = mfa.enable(current_user, secret)
    session.pop("totp_pending", None)
    return render_template("profile/backup_codes.html", codes=codes, next=safe_next(request.args.get("next")))


@bp.post("/two-factor/backup-codes")
@fresh_auth_required
def regenerate_backup_codes():
    if not current_user.has_mfa:
        return redirect(url_for(".two_factor"), 303)
    return render_template("profile/backup_codes.html", codes=mfa.regenerate_backup_codes(current_user), next=None)


@bp.post("/two-factor/disable")
@fresh_auth_required
def disable_two_factor():
    mfa.disable(current_user)
    flash("Two-factor authentication is off.", "success")
    return redirect(url_for(".index"), 303)


@bp.post("/sessions/<uuid:session_id>/revoke")
def revoke_session(session_id: UUID):
    current = sessions.current()
    if current is not None and current.id == session_id:
        events.security("signout", current_user)
        sessions.end_current()
        logout_user()
        flash("You are signed out.", "info")
        return redirect(url_for("accounts.login"), 303)
    if sessions.revoke(current_user.id, session_id):
        events.security("session.revoke", current_user, session_id=str(session_id))
        flash("That session was signed out.", "success")
    else:
        flash("That session had already ended.", "info")
    return redirect(url_for(".index"), 303)


@bp.post("/sessions/revoke-others")
def revoke_other_sessions():
    count = sessions.revoke_all(current_user.id, except_current=True)
    events.security("session.revoke_others", current_user, sessions_ended=count)
    flash(f"Signed out {count} other session{'s' if count != 1 else ''}.", "success")
    return redirect(url_for(".index"), 303)
