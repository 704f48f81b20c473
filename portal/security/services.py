"""Account changes: password, email, name. They flush, never commit; the request edge commits."""
from __future__ import annotations

from flask import current_app, url_for
from sqlalchemy import delete, func, text

from uuid import UUID

from ..accounts import lifecycle
from ..accounts.models import User, UserStatus
from ..accounts.passwords import hash_password
from ..accounts.services import find_user_by_email, normalise_email
from ..database.context import user_scope
from ..extensions import db
from ..mail.outbox import enqueue
from ..rules import RuleViolation
from . import events, passwords, sessions, tokens
from .models import AccountToken, BackupCode, LoginEvent, TokenPurpose, UserSession


def _link(endpoint: str, token: str) -> str:
    # BASE_URL, never the request's Host header (set outside production by default: portal.config).
    return current_app.config["BASE_URL"] + url_for(endpoint, token=token)


def set_password(user: User, new_password: str, *, keep_current_session: bool) -> None:
    """Change the password and end every other session (all of them after a reset)."""
    issue = passwords.problem(new_password, email=user.email, name=user.name)
    if issue:
        raise RuleViolation(issue, field="password")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = func.now()
    ended = sessions.revoke_all(user.id, except_current=keep_current_session)
    events.security("password.change" if keep_current_session else "password.reset", user, sessions_ended=ended)


STATUS_EVENTS = {UserStatus.ACTIVE: "account.reactivate", UserStatus.SUSPENDED: "account.suspend",
                 UserStatus.DEACTIVATED: "account.deletion_requested", UserStatus.DELETED: "account.deleted"}


def change_status(user: User, status: UserStatus, *, by: UUID | None, reason: str | None) -> int:
    """A new account status (lifecycle.set_status) as a security event; returns sessions ended."""
    ended = lifecycle.set_status(user, status, by=by, reason=reason)
    events.security(STATUS_EVENTS[status], user, sessions_ended=ended.get("sessions", 0),
                    **({"reason": user.status_reason} if user.status_reason else {}))
    return ended.get("sessions", 0)


def set_active(user: User, active: bool, *, by: UUID | None = None, reason: str | None = None) -> int:
    """Suspend (ending every session at once) or reactivate an account; returns sessions ended.
    `flask users disable|enable` and older callers; the console gives a reason."""
    return change_status(user, UserStatus.ACTIVE if active else UserStatus.SUSPENDED, by=by,
                         reason=None if active else (reason or "Disabled from the command line."))


def cancel_deletion(user: User) -> None:
    """The person signed in during their deletion's grace period and chose to keep the account."""
    if user.status != UserStatus.DEACTIVATED or user.deletion_due_at is None:
        raise RuleViolation("This account is not scheduled for deletion.")
    lifecycle.set_status(user, UserStatus.ACTIVE, by=user.id, reason=None)
    events.security("account.deletion_cancelled", user)


def scrub(user_id: UUID) -> int:
    """accounts.lifecycle's scrubber: a deleted account's second factor, sessions, links and
    sign-in history (with its addresses). The security events stay: they are the account's
    security log, and read 'Deleted user' once the account is scrubbed. As the account (RLS)."""
    with user_scope(db.session, user_id):
        return sum(db.session.execute(delete(model).where(model.user_id == user_id)).rowcount
                   for model in (BackupCode, UserSession, AccountToken, LoginEvent))


def request_password_reset(email: str) -> None:
    """Email a reset link if the account exists; the caller answers the same either way."""
    user = find_user_by_email(email)
    # An account waiting out its deletion may reset its password: signing in is how it comes back.
    pending = user is not None and user.status == UserStatus.DEACTIVATED and user.deletion_due_at is not None
    if user is None or not (user.is_active or pending):
        return
    token = tokens.issue(user, TokenPurpose.RESET_PASSWORD)
    events.security("password.reset_requested", user)
    enqueue("reset_password", user.email, "Reset your Portal password", "reset_password", user=user,
            link=_link("accounts_reset.reset", token))


def reset_password(token: str, new_password: str) -> User:
    record = tokens.find(token, TokenPurpose.RESET_PASSWORD)
    if record is None:
        raise RuleViolation("This reset link is not valid any more. Ask for a new one.")
    # The link proves the person: their sessions end and their link is used as them (RLS).
    with user_scope(db.session, record.user_id):
        user = db.session.get(User, record.user_id)
        set_password(user, new_password, keep_current_session=False)
        if not tokens.consume(record):
            raise RuleViolation("This reset link was just used. Ask for a new one.")
    return user


def request_email_change(user: User, new_email: str) -> None:
    new_email = normalise_email(new_email)
    if new_email == user.email.lower():
        raise RuleViolation("That is already your email address.", field="email")
    if find_user_by_email(new_email):
        raise RuleViolation("Another account uses that email address.", field="email")
    token = tokens.issue(user, TokenPurpose.VERIFY_EMAIL, new_email=new_email)
    enqueue("verify_email", new_email, "Confirm your new Portal email address", "verify_email", user=user,
            new_email=new_email, link=_link("profile.verify_email", token))
    # Tell the current address too: a hijacked session should not change it silently.
    enqueue("email_change_notice", user.email, "Your Portal email address is being changed",
            "email_change_notice", user=user, new_email=new_email)


def confirm_email_change(user: User, token: str) -> str:
    record = tokens.find(token, TokenPurpose.VERIFY_EMAIL)
    if record is None or record.user_id != user.id:
        raise RuleViolation("This confirmation link is not valid any more.")
    if find_user_by_email(record.new_email):
        raise RuleViolation("Another account now uses that email address.")
    if not tokens.consume(record):
        raise RuleViolation("This confirmation link was just used.")
    # Every other session ends: one that was signed in with the old address is no longer trusted.
    ended = sessions.revoke_all(user.id, except_current=True)
    events.security("email.change", user, old=user.email, new=record.new_email, sessions_ended=ended)
    user.email, user.email_verified_at = record.new_email, func.now()
    db.session.flush()  # the unique email index decides races here, inside the service
    return record.new_email


def prune_history(events_days: int, sessions_days: int) -> dict:
    """Delete sign-in events older than `events_days`, sessions ended more than `sessions_days`
    ago and passkey challenges expired an hour ago, of every account (portal_prune_signin_history:
    these rows are each their user's under RLS)."""
    row = db.session.execute(text("SELECT * FROM portal_prune_signin_history(:e, :s)"),
                             {"e": events_days, "s": sessions_days}).one()
    return {"login_events": row.pruned_login_events, "sessions": row.pruned_sessions,
            "challenges": row.pruned_challenges}
