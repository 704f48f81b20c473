"""GET /login/sso sends the browser to the provider; GET /login/sso/callback finishes.

Every failure goes back to /login with a message (and into the sign-in history); none is a 500.
"""
from __future__ import annotations

import time

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import MismatchingStateError
from flask import Blueprint, current_app, flash, redirect, request, session, url_for
from flask_login import current_user
from joserfc.errors import JoseError
from sqlalchemy.exc import IntegrityError

from ..database.conflicts import not_repeatable
from ..extensions import db
from ..redirects import safe_next
from ..security import events, login as sign_in
from . import client as oidc, services

bp = Blueprint("sso", __name__)
NEXT_KEY = "sso_next"
METHOD = "oidc"
UNAVAILABLE = "Single sign-on is not available right now. Try again later, or sign in with your password."
# What can go wrong talking to the provider or checking what it sent: never a 500.
PROVIDER_ERRORS = (AuthlibBaseError, JoseError, requests.RequestException, oidc.MisconfiguredProvider,
                   ValueError, KeyError, TypeError)


def _back_to_login(message: str, target: str | None = None, category: str = "error"):
    flash(message, category)
    return redirect(url_for("accounts.login", next=target), 303)


def _redirect_uri() -> str:
    # Behind a proxy the public address comes from BASE_URL (required in production), never the Host header.
    return current_app.config["BASE_URL"] + url_for("sso.callback")


@bp.get("/login/sso")
def start():
    target = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(target or sign_in.home_for(current_user), 303)
    try:
        response = oidc.provider().authorize_redirect(_redirect_uri())
    except PROVIDER_ERRORS as exc:
        current_app.logger.warning("Single sign-on could not start: %r", exc)
        return _back_to_login(UNAVAILABLE, target)
    session[NEXT_KEY] = target
    return response


@bp.get("/login/sso/callback")
def callback():
    target = session.pop(NEXT_KEY, None)
    if request.args.get("error"):
        return _provider_refused(request.args["error"], target)
    try:
        provider = oidc.provider()
        not_repeatable()  # the code is spent at the provider: the edge must not run this twice
        token = provider.authorize_access_token()
        claims = _claims(provider, token)
    except MismatchingStateError:
        events.record("", success=False, reason="oidc_bad_state", method=METHOD)
        return _back_to_login("That single sign-on attempt has expired or was not started here. Please try again.",
                              target)
    except PROVIDER_ERRORS as exc:
        current_app.logger.warning("Single sign-on callback failed: %r", exc)
        events.record("", success=False, reason="oidc_provider_error", method=METHOD)
        return _back_to_login(UNAVAILABLE, target)

    try:
        outcome = services.resolve(current_app.config["OIDC_ISSUER"], claims,
                                   allow_signup=current_app.config["OIDC_ALLOW_SIGNUP"])
    except IntegrityError:  # the same account linked or created by a concurrent sign-in
        db.session.rollback()
        return _back_to_login("Your account was being set up by another sign-in. Please try again.", target)
    if not outcome.ok:
        events.record(outcome.email, success=False, reason=outcome.reason, user_id=outcome.user_id, method=METHOD)
        return _back_to_login(outcome.message, target)

    user = outcome.user
    if user.has_mfa:
        # The same pending step as a password sign-in: nothing is signed in until the code checks out.
        session.clear()
        session["second_factor"] = {"user": str(user.id), "at": time.time(), "next": target, "method": METHOD}
        return redirect(url_for("accounts.second_factor"), 303)
    sign_in.complete(user, METHOD)
    if outcome.reason == "created" and not target:
        flash("Welcome! Your account is ready. To join an organization, open its invitation link from your "
              "email, or ask one of its admins to invite you.", "info")
    return redirect(target or sign_in.home_for(user), 303)


def _provider_refused(error: str, target: str | None):
    state = request.args.get("state")
    if state:  # the attempt is over: its PKCE verifier and nonce go
        oidc.provider_state_clear(state)
    events.record("", success=False, reason="oidc_denied" if error == "access_denied" else "oidc_provider_error",
                  method=METHOD)
    if error == "access_denied":
        return _back_to_login("Single sign-on was cancelled, so you are not signed in.", target, "info")
    current_app.logger.warning("Single sign-on provider returned error %r", error[:100])
    return _back_to_login(UNAVAILABLE, target)


def _claims(provider, token: dict) -> dict:
    """The verified ID token's claims; email and its verification from userinfo if the ID token lacks them."""
    claims = dict(token.get("userinfo") or {})
    if not claims.get("sub"):
        raise ValueError("no ID token in the token response")
    if "email" not in claims or "email_verified" not in claims:
        extra = provider.userinfo()
        if str(extra.get("sub")) == str(claims["sub"]):  # OIDC Core 5.3.2: otherwise it must not be used
            for key in ("email", "email_verified", "name", "given_name", "family_name", "preferred_username"):
                if key not in claims and key in extra:
                    claims[key] = extra[key]
    return claims
