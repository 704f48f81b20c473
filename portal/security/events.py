"""Sign-in history and account security events (seed 004).

Sign-in attempts go to `login_events` (the profile's recent sign-ins, throttling) and, like
every other account event, to `security_events` with a severity. Successes and other events
are written in the request's transaction; failures in a short transaction of their own, so
they are kept although the request that saw them rolls back."""
from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from flask import g, has_request_context, request
from sqlalchemy import func, insert, select

from ..extensions import db
from .models import LoginEvent, SecurityEvent

INFO, WARNING, CRITICAL = "info", "warning", "critical"
# Every kind of account event, its severity and how it reads.
KINDS: dict[str, tuple[str, str]] = {
    "signin.success": (INFO, "Signed in"),
    "signin.failure": (WARNING, "Sign-in failed"),
    "signin.new_browser": (WARNING, "Signed in from a new browser"),
    "signout": (INFO, "Signed out"),
    "password.change": (INFO, "Password changed"),
    "password.reset": (WARNING, "Password reset by email link"),
    "password.reset_requested": (INFO, "Password reset link requested"),
    "email.change": (WARNING, "Email address changed"),
    "mfa.enable": (INFO, "Two-factor authentication turned on"),
    "mfa.disable": (WARNING, "Two-factor authentication turned off"),
    "mfa.backup_codes_regenerated": (INFO, "New backup codes made"),
    "mfa.backup_code_used": (WARNING, "Backup code used"),
    "passkey.add": (INFO, "Passkey added"),
    "passkey.rename": (INFO, "Passkey renamed"),
    "passkey.remove": (WARNING, "Passkey removed"),
    "passkey.counter_regressed": (CRITICAL, "Passkey refused: its counter went backwards (copied?)"),
    "session.revoke": (INFO, "A session was signed out"),
    "session.revoke_others": (INFO, "All other sessions were signed out"),
    "sso.link": (WARNING, "Linked to a single sign-on account"),
    "account.disable": (CRITICAL, "Account disabled"),
    "account.enable": (WARNING, "Account enabled again"),
    "account.suspend": (CRITICAL, "Account suspended"),
    "account.reactivate": (WARNING, "Account reactivated"),
    "account.deletion_requested": (WARNING, "Account deletion requested"),
    "account.deletion_cancelled": (WARNING, "Account deletion cancelled"),
    "account.deleted": (CRITICAL, "Account deleted and its personal data erased"),
    "account.export_requested": (INFO, "Personal data export requested"),
    "account.export_downloaded": (WARNING, "Personal data export downloaded"),
    "profile.name": (INFO, "Name changed"),
    "profile.avatar": (INFO, "Profile picture changed"),
    "notifications.preferences": (INFO, "Notification preferences changed"),
    "notifications.unsubscribe": (INFO, "Unsubscribed from notification emails by a link"),
}
# Failures that point at an attack rather than a typo.
CRITICAL_FAILURES = {"throttled", "disabled", "suspended", "deleted", "oidc_linked_elsewhere", "passkey_counter"}


def _context() -> dict[str, Any]:
    if not has_request_context():
        return {"ip_address": None, "user_agent": None, "request_id": None}
    return {"ip_address": request.remote_addr, "user_agent": (request.user_agent.string or "")[:500] or None,
            "request_id": g.get("request_id")}


def event_row(kind: str, user_id: UUID | None, email: str, details: dict, severity: str | None = None) -> dict:
    # The id is made here: the row is written without RETURNING, which RLS would refuse
    # for a row its writer may not read (a failed sign-in before anyone is signed in).
    return {"id": uuid4(), "event": kind, "severity": severity or KINDS[kind][0], "user_id": user_id, "email": (email or "")[:320],
            "details": details, **_context()}


def security(kind: str, user, **details: Any) -> None:
    """An account event of `user` (a User), in the request's transaction."""
    db.session.add(SecurityEvent(**event_row(kind, user.id, user.email, details)))


def record(email: str, *, success: bool, reason: str, user_id: UUID | None = None,
           method: str = "password") -> None:
    # The id is made here, as event_row's: a failure with no account is a row nobody may read back.
    values = {"id": uuid4(), "email": (email or "")[:320], "success": success, "reason": reason,
              "user_id": user_id, "method": method}
    context = _context()
    values["ip_address"], values["user_agent"] = context["ip_address"], context["user_agent"]
    kind = "signin.success" if success else "signin.failure"
    severity = CRITICAL if reason in CRITICAL_FAILURES else None
    event = event_row(kind, user_id, email, {"method": method} | ({} if success else {"reason": reason}), severity)
    if success:
        db.session.add(LoginEvent(**values))
        db.session.add(SecurityEvent(**event))
        return
    with db.engine.begin() as conn:
        # A sign-in row is its account's own (RLS user_own): this transaction, which writes
        # these two rows and nothing else, writes it as the account tried. No account: user_id
        # NULL, which anyone may insert and nobody reads (login_events_unknown_account_insert).
        if user_id is not None:
            conn.execute(select(func.set_config("app.user_id", str(user_id), True)))
        conn.execute(insert(LoginEvent).values(**values))
        conn.execute(insert(SecurityEvent).values(**event))


# Sign-in outcomes and methods as the login history stores them, in words for pages.
REASONS = {
    "ok": "signed in", "bad_password": "wrong password", "throttled": "too many attempts",
    "disabled": "account disabled", "suspended": "account suspended", "deleted": "account deleted",
    "deactivated": "account deactivated", "deletion_pending": "account scheduled for deletion",
    "bad_second_factor": "wrong two-factor code",
    "bad_reauth": "wrong password when confirming a sensitive change",
    "oidc_bad_state": "single sign-on link expired or reused", "oidc_provider_error": "single sign-on provider error",
    "oidc_provider_refused": "single sign-on provider at an address the portal does not connect to",
    "oidc_denied": "refused at the single sign-on provider", "oidc_no_subject": "single sign-on gave no identity",
    "oidc_no_email": "single sign-on gave no email address",
    "oidc_email_unverified": "email not verified by the single sign-on provider",
    "oidc_linked_elsewhere": "single sign-on account linked to another user",
    "oidc_no_account": "no account for this single sign-on user",
    "sso_required": "password refused: the organization requires single sign-on",
    "sso_domain_unverified": "single sign-on email outside the organization's verified domains",
    "sso_invitation_only": "single sign-on: the organization admits members by invitation only",
    "sso_plan_limit": "single sign-on: the organization's plan has no free seat",
    "sso_membership_suspended": "single sign-on: membership suspended",
    "bad_passkey": "passkey not accepted", "passkey_unknown": "passkey not registered",
    "passkey_expired": "passkey request expired or reused", "passkey_counter": "passkey counter went backwards",
    "passkey_unavailable": "passkeys unavailable at this address",
}
METHODS = {"password": "password", "totp": "authenticator code", "backup_code": "backup code",
           "oidc": "single sign-on", "invitation": "invitation link", "reauth": "password confirmation",
           "passkey": "passkey", "sso": "organization single sign-on"}


def reason_label(reason: str | None) -> str:
    if not reason:
        return ""
    return REASONS.get(reason, reason.replace("oidc_", "single sign-on: ").replace("_", " "))


def method_label(method: str | None) -> str:
    """"password+backup_code" -> "password and backup code"."""
    if not method:
        return ""
    return " and ".join(METHODS.get(part, part.replace("_", " ")) for part in method.split("+"))


def describe(kind: str) -> str:
    return KINDS.get(kind, (INFO, kind.replace("_", " ").replace(".", ": ")))[1]
