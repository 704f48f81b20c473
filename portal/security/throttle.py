"""Per-account sign-in throttling: at most N failures per account per window.

The lock is bounded (it lifts as failures age out of the window) and a browser
that has signed in to the account before carries a signed device cookie that is
exempt from the password's limit, so an attacker cannot keep the owner out (OWASP
"device cookies"). The second factor's limit holds for every browser: only someone
who has the password reaches it, and a device cookie must not buy unlimited guesses
at a 6-digit code. Per-address limits are Flask-Limiter's, on the sign-in routes.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import text

from ..extensions import db

DEVICE_COOKIE = "portal_device"
COUNTED = ("bad_password", "bad_second_factor", "bad_reauth")
SECOND_FACTOR = ("bad_second_factor",)


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="portal-device")


def trusted_device(email: str) -> bool:
    try:
        emails = _serializer().loads(request.cookies.get(DEVICE_COOKIE, ""))
    except BadSignature:
        return False
    return isinstance(emails, list) and email.lower() in emails


def remember_device(response, email: str) -> None:
    try:
        emails = _serializer().loads(request.cookies.get(DEVICE_COOKIE, ""))
    except BadSignature:
        emails = []
    emails = ([email.lower()] + [e for e in emails if e != email.lower()])[:5]
    response.set_cookie(DEVICE_COOKIE, _serializer().dumps(emails), max_age=180 * 24 * 3600, httponly=True,
                        samesite="Lax", secure=current_app.config["SESSION_COOKIE_SECURE"])


def retry_after(email: str, *, trust_device: bool = True) -> int:
    """Seconds until the account accepts attempts again from this browser; 0 when it does.
    Re-authentication inside a session passes trust_device=False: a stolen session's browser
    carries the device cookie too."""
    if trust_device and trusted_device(email):
        return 0
    return _wait(email, COUNTED)


def second_factor_retry_after(email: str) -> int:
    """Seconds until the account's second factor may be tried again, from any browser (device
    cookie or not); counts only wrong codes, so password guessers cannot lock the owner out."""
    return _wait(email, SECOND_FACTOR)


def _wait(email: str, reasons: tuple[str, ...]) -> int:
    window = timedelta(minutes=current_app.config["LOGIN_FAILURE_WINDOW_MINUTES"])
    # Before anyone is signed in, across accounts (an address may have none): sign-in rows are
    # each account's own under RLS, so a count through portal_signin_failures, never the rows.
    count, oldest = db.session.execute(
        text("SELECT failures, oldest FROM portal_signin_failures(:e, CAST(:r AS text[]), :w)"),
        {"e": email, "r": list(reasons), "w": int(window.total_seconds())}).one()
    if count < current_app.config["LOGIN_MAX_FAILURES"]:
        return 0
    return max(1, int((oldest + window - datetime.now(timezone.utc)).total_seconds()))
