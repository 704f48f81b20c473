"""/account/<section>: profile (names, picture, email re-verified, time zone and locale, sign-in
counts), password and two-factor, sessions and recent sign-ins, security activity, notifications,
your data (export, deletion); each a page of its own beside the section nav (`SECTIONS`)."""
from __future__ import annotations

from functools import wraps
from uuid import UUID

from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template, request, send_file,
                   session, url_for)
from flask_login import current_user, login_required, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select

from .. import ui
from ..accounts import lifecycle
from ..accounts.passwords import verify_password
from ..database.loaded import mapped
from ..extensions import db, limiter
from ..notifications import services as notification_services
from ..notifications.forms import preferences_form
from ..notifications.kinds import CATALOGUE, CHANNEL_LABELS
from ..redirects import safe_next
from ..rules import RuleViolation
from ..security import events, mfa, services, sessions, throttle, tokens
from ..security.models import TokenPurpose
from ..security.models import LoginEvent, SecurityEvent
from ..timezones import is_timezone, sorted_names
from . import deletion, export
from . import services as profile_services
from .forms import AvatarForm, CodeForm, ConfirmForm, EmailForm, LocaleForm, NameForm, PasswordForm, TimezoneForm

bp = Blueprint("profile", __name__, url_prefix="/account")
HISTORY = 20


@bp.before_request
@login_required
def _signed_in():
    pass


# The sections of the account, in the order of the section nav: (endpoint, label).
SECTIONS = (("profile.profile", "Profile"), ("profile.security", "Password and two-factor"),
            ("profile.sessions", "Sessions"), ("profile.activity", "Security activity"),
            ("profile.notifications", "Notifications"), ("connected_apps.connected_apps", "Connected apps"),
            ("profile.data", "Your data"))


def fresh_auth_required(view):
    """Sensitive changes need the password (and second factor) again within REAUTH_MINUTES."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not sessions.recently_authenticated(current_app.config["REAUTH_MINUTES"]):
            # A form comes back to its section once confirmed (the email's is Profile).
            # Absolute endpoints: other areas' account forms (passkeys) use this decorator too.
            section = {"profile.change_email": "profile.profile", "profile.delete_account": "profile.data"}.get(
                request.endpoint, "profile.security")
            target = request.full_path if request.method == "GET" else url_for(section)
            flash("Please confirm it is you first.", "info")
            return redirect(url_for(".confirm", next=target), 303)
        return view(*args, **kwargs)
    return wrapped


def _section(name: str, status: int = 200, **context):
    """One section's page: the section nav beside what that section needs (and nothing more)."""
    return render_template(f"profile/{name}.html", sections=SECTIONS, section=f"profile.{name}", **context), status


def _profile(status: int = 200, name_form=None, email_form=None, avatar_form=None, locale_form=None):
    user = mapped(current_user)
    return _section("profile", status,
                    name_form=name_form or NameForm(given_name=user.given_name, family_name=user.family_name),
                    email_form=email_form or EmailForm(), avatar_form=avatar_form or AvatarForm(),
                    locale_form=locale_form or LocaleForm(locale=user.locale or ""),
                    login_count=user.login_count, last_activity=sessions.last_activity(user.id),
                    last_login_at=user.last_login_at)


def _security(status: int = 200, password_form=None):
    return _section("security", status, password_form=password_form or PasswordForm(),
                    backup_left=mfa.remaining_backup_codes(current_user) if current_user.has_mfa else 0)


@bp.get("/")
def index():
    """The account's first section. A browser keeps an old link's anchor (#notifications) across
    the redirect; static/sections.js then opens the section of that name."""
    return redirect(url_for(".profile"), 303)


@bp.get("/profile")
def profile():
    return _profile()


@bp.get("/security")
def security():
    """Password and two-factor authentication."""
    return _security()


@bp.get("/sessions", endpoint="sessions")
def sessions_section():
    """Where the user is signed in, and the recent sign-ins."""
    return _section("sessions", sessions=sessions.active_sessions(current_user.id), current_session=sessions.current(),
                    history=db.session.scalars(select(LoginEvent).where(LoginEvent.user_id == current_user.id)
                                               .order_by(LoginEvent.created_at.desc()).limit(HISTORY)).all())


@bp.get("/activity")
def activity():
    """Changes to how the user signs in, newest first."""
    # Read through the security_events_self_read policy (app.user_id).
    return _section("activity", activity=db.session.scalars(
        select(SecurityEvent).where(SecurityEvent.user_id == current_user.id)
        .order_by(SecurityEvent.created_at.desc()).limit(HISTORY)).all(), describe_event=events.describe)


@bp.get("/notifications")
def notifications():
    """How each kind of notification reaches the user; the form posts to notifications.preferences."""
    return _section("notifications",
                    notification_form=preferences_form(notification_services.preferences(current_user.id)),
                    security_kinds=[f"{info.label}: {CHANNEL_LABELS[info.default].lower()}"
                                    for info in CATALOGUE.values() if info.security])


@bp.post("/name")
def change_name():
    form = NameForm()
    if not form.validate():
        return _profile(422, name_form=form)
    try:
        profile_services.set_names(current_user, *form.names())
    except RuleViolation as exc:
        db.session.rollback()
        form.given_name.errors.append(exc.message)
        return _profile(422, name_form=form)
    flash("Your name is saved.", "success")
    return redirect(url_for(".profile"), 303)


@bp.post("/avatar")
def upload_avatar():
    form = AvatarForm()
    if form.validate():
        upload = request.files.get("avatar")
        try:
            data = upload.read() if upload else b""  # bounded by MAX_CONTENT_LENGTH
            profile_services.set_avatar(current_user, profile_services.decode_avatar(
                data, upload.filename if upload else None))
        except RuleViolation as exc:
            db.session.rollback()
            form.avatar.errors = [exc.message]
        else:
            flash("Your picture is saved.", "success")
            return redirect(url_for(".profile"), 303)
    return _profile(422, avatar_form=form)


@bp.post("/avatar/remove")
def remove_avatar():
    if profile_services.remove_avatar(current_user):
        flash("Your picture is removed.", "success")
    return redirect(url_for(".profile"), 303)


@bp.get("/avatar")
def avatar():
    """The person's own picture (the shell's account menu names its version in the URL)."""
    row = profile_services.avatar_of(current_user.id)
    if row is None:
        abort(404)
    response = Response(row.content, mimetype=row.media_type)
    version = row.sha256[:16]
    response.set_etag(version)
    response.headers["Cache-Control"] = "private, max-age=31536000, immutable" if request.args.get("v") == version \
        else "private, no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = "inline"
    return response.make_conditional(request)


@bp.post("/locale")
def change_locale():
    form = LocaleForm()
    if not form.validate():
        return _profile(422, locale_form=form)
    profile_services.set_locale(current_user, form.locale.data or None)
    flash("Your language and region are saved.", "success")
    return redirect(url_for(".profile"), 303)


def _data(status: int = 200):
    user_id = current_user.id
    return _section("data", status, export=export.latest(user_id), owned=deletion.last_owned(user_id),
                    grace_days=lifecycle.grace_days(), form=FlaskForm())


@bp.get("/data")
def data():
    """Your data: an export of it, and deleting the account."""
    return _data()


@bp.post("/data/export")
def request_export():
    if not FlaskForm().validate():
        return _data(400)
    try:
        export.request_export(current_user)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "info")
    else:
        flash(f"Your export is being made. We email {current_user.email} a link when it is ready.", "success")
    return redirect(url_for(".data"), 303)


@bp.get("/data/export/<token>")
def download_export(token: str):
    """The emailed link: only for the person it was made for, while it works (LINK_HOURS)."""
    record = export.for_download(current_user.id, token)
    headers = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
    if record is None or not export.file_of(record).exists():
        return render_template("profile/export_invalid.html"), 410, headers
    events.security("account.export_downloaded", current_user)
    response = send_file(export.file_of(record), mimetype="application/zip", as_attachment=True,
                         download_name=f"portal-account-{record.finished_at:%Y%m%d}.zip", max_age=0)
    response.headers.update(headers)
    return response


@bp.post("/data/delete")
@fresh_auth_required
def delete_account():
    """Deactivate now, erase after the grace period; signed out at once (every session ends)."""
    # The confirmation dialog's own field: a bare POST (a replayed form, a script) deletes nothing.
    if not FlaskForm().validate() or request.form.get("confirm") != "delete":
        flash("Confirm the deletion in the dialog to delete your account.", "error")
        return _data(400)
    try:
        due = deletion.request_deletion(mapped(current_user))
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".data"), 303)
    session.clear()
    logout_user()
    flash(f"Your account is deactivated and will be deleted on {due:%d %B %Y}. Until then, signing in "
          "offers to cancel the deletion.", "info")
    return redirect(url_for("accounts.login"), 303)


@bp.app_template_global()
def account_timezone_form() -> TimezoneForm:
    """The time-zone form of templates/profile/_timezone.html, wherever the account page puts it."""
    return TimezoneForm(formdata=None, timezone=current_user.timezone or "")


@bp.app_template_global()
def timezone_names() -> tuple[str, ...]:
    return sorted_names()


@bp.route("/timezone", methods=["GET", "POST"])
def timezone():
    """The time-zone preference. static/time.js posts the browser's zone with `detected=1`: it
    is kept only while the person has chosen none, and answered with 204."""
    detected = request.method == "POST" and request.form.get("detected") == "1"
    form = TimezoneForm() if request.method == "POST" else account_timezone_form()
    if request.method == "GET":
        return render_template("profile/timezone.html", timezone_form=form)
    if detected:
        # A zone the server does not know (Chromium may say Etc/Unknown) is ignored, not an error:
        # times stay in the browser's zone on the page and in UTC on the server.
        name = request.form.get("timezone", "")
        if is_timezone(name) and not current_user.timezone:
            current_user.timezone = name
        return "", 204
    if not form.validate():
        return render_template("profile/timezone.html", timezone_form=form), 422
    current_user.timezone = form.timezone.data or None
    flash(f"Times are now shown in {form.timezone.data}." if form.timezone.data
          else "Times are now shown in your browser's time zone.", "success")
    return redirect(safe_next(request.form.get("next")) or url_for(".index"), 303)


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
            return redirect(url_for(".profile"), 303)
    return _profile(422, email_form=form)


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
        return redirect(url_for(".profile"), 303)
    flash(f"Your email address is now {email}.", "success")
    return redirect(url_for(".profile"), 303)


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
            return _security(429, password_form=form)
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
                return redirect(url_for(".security"), 303)
    return _security(422, password_form=form)


@bp.route("/confirm", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"], methods=["POST"],
               deduct_when=lambda r: r.status_code >= 400)
def confirm():
    form = ConfirmForm()
    target = safe_next(request.args.get("next")) or url_for(".profile")
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
    return _show_backup_codes(codes, safe_next(request.args.get("next")))


def _show_backup_codes(codes: list[str], next_url: str | None):
    # POST-redirect-GET: a reload of the page shows no codes and makes none.
    ui.keep_secret(f"backup_codes:{current_user.id}", {"codes": codes, "next": next_url})
    return redirect(url_for(".backup_codes"), 303)


@bp.get("/two-factor/backup-codes")
@login_required
def backup_codes():
    """The backup codes just made, shown this once."""
    kept = ui.take_secret(f"backup_codes:{current_user.id}") or {}
    return ui.no_store(render_template("profile/backup_codes.html", codes=kept.get("codes"),
                                       next=safe_next(kept.get("next"))))


@bp.post("/two-factor/backup-codes")
@fresh_auth_required
def regenerate_backup_codes():
    if not current_user.has_mfa:
        return redirect(url_for(".two_factor"), 303)
    return _show_backup_codes(mfa.regenerate_backup_codes(current_user), None)


@bp.post("/two-factor/disable")
@fresh_auth_required
def disable_two_factor():
    mfa.disable(current_user)
    flash("Two-factor authentication is off.", "success")
    return redirect(url_for(".security"), 303)


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
    return redirect(url_for(".sessions"), 303)


@bp.post("/sessions/revoke-others")
def revoke_other_sessions():
    count = sessions.revoke_all(current_user.id, except_current=True)
    events.security("session.revoke_others", current_user, sessions_ended=count)
    flash(f"Signed out {count} other session{'s' if count != 1 else ''}.", "success")
    return redirect(url_for(".sessions"), 303)
