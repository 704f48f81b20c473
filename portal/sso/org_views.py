"""Organizations' own providers at /login (issue 25): home-realm discovery, the round trip, and
the "Test connection" trip that reports what the provider sent and changes nothing.

GET /login/sso/discover?email=  JSON for static/login_discovery.js: where this address signs in.
GET /login/sso/org?email=&next= sends the browser to the provider of the organization that has
    verified the address's domain (or back to /login to use the password).
GET /login/sso/org/callback     finishes either trip; one redirect URI for every connection (the
    state in the signed session says which connection and tenant started it).
"""
from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import MismatchingStateError
from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user
from joserfc.errors import JoseError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import egress
from ..accounts.models import User
from ..accounts.services import normalise_email
from ..database.conflicts import not_repeatable
from ..database.context import tenant_scope
from ..extensions import db
from ..redirects import safe_next
from ..security import events, login as sign_in
from ..tenants.models import Tenant
from . import domains, groups as group_rules, members, provider
from .models import SsoConnection
from .sealing import Unreadable

bp = Blueprint("sso_org", __name__)
PENDING = "sso_org"
METHOD = "sso"
MAX_PENDING = 4
UNAVAILABLE = ("Your organization's single sign-on is not available right now. Try again later, or ask its "
               "admins for help.")
# The provider's address (or an endpoint its discovery document names) is one the portal does not
# connect to: the organization's admins must change it; trying again will not help.
REFUSED = ("Your organization's single sign-on provider is at an address this portal will not connect to "
           "(a private or internal network), so you cannot sign in with it. Ask your organization's admins "
           "to check its single sign-on connection.")
# egress.Failed (DNS, connection, timeout) is one of these; egress.Refused is caught before them.
PROVIDER_ERRORS = (AuthlibBaseError, JoseError, requests.RequestException, egress.EgressError,
                   provider.MisconfiguredProvider, Unreadable, ValueError, KeyError, TypeError)


def provider_error(exc: Exception) -> str:
    """What went wrong, for the organization's admins (the test page, the log): egress's sentence
    as it is, anything else with its kind."""
    if isinstance(exc, egress.EgressError):
        return str(exc)
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _refused(connection: SsoConnection, exc: egress.Refused, when: str) -> None:
    current_app.logger.warning("Organization single sign-on refused (%s, tenant %s, connection %s): %s", when,
                               connection.tenant_id, connection.id, exc)


def redirect_uri() -> str:
    # BASE_URL, never the Host header: the address the provider's client is registered with.
    return current_app.config["BASE_URL"] + url_for("sso_org.callback")


def _back(message: str, target: str | None = None, category: str = "error", email: str | None = None):
    flash(message, category)
    return redirect(url_for("accounts.login", next=target, email=email), 303)


def discovered(email: str) -> domains.Route | None:
    route = domains.route_for_email(normalise_email(email))
    return route if route is not None and route.connection_id is not None else None


@bp.get("/login/sso/discover")
def discover():
    """Only whether the domain has single sign-on, which DNS already makes public; never whether
    an account exists."""
    email = normalise_email(request.args.get("email", ""))[:320]
    route = discovered(email) if "@" in email else None
    target = safe_next(request.args.get("next"))
    body = {"sso": None}
    if route is not None:
        body = {"sso": url_for("sso_org.start", email=email, next=target), "organization": route.name}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def connection_in(tenant_id: UUID, connection_id: UUID) -> tuple[Tenant | None, SsoConnection | None]:
    tenant = db.session.get(Tenant, tenant_id)
    with tenant_scope(db.session, tenant_id, actor=None):
        connection = db.session.scalar(select(SsoConnection).where(SsoConnection.tenant_id == tenant_id,
                                                                   SsoConnection.id == connection_id))
    return tenant, connection


def begin(connection: SsoConnection, *, target: str | None, test_by: UUID | None = None, email: str | None = None):
    """Send the browser to the connection's provider, remembering which trip this is."""
    client = provider.checked(provider.client_for(connection), connection)
    extra = {"login_hint": email} if email else {}
    response = client.authorize_redirect(redirect_uri(), **extra)
    state = parse_qs(urlsplit(response.headers["Location"]).query).get("state", [""])[0]
    pending = dict(session.get(PENDING) or {})
    while len(pending) >= MAX_PENDING:  # a few tabs at once; the oldest attempt goes
        pending.pop(next(iter(pending)))
    pending[state] = {"tenant": str(connection.tenant_id), "connection": str(connection.id), "next": target,
                      "test": str(test_by) if test_by else None, "at": time.time()}
    session[PENDING] = pending
    return response


@bp.get("/login/sso/org")
def start():
    target = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(target or sign_in.home_for(current_user), 303)
    email = normalise_email(request.args.get("email", ""))[:320]
    if not email:  # the page without JavaScript: ask for the address
        return render_template("sso/start.html", target=target)
    route = discovered(email) if "@" in email else None
    if route is None:
        return _back("Your email's domain has no single sign-on here: sign in with your password.", target, "info",
                     email=email or None)
    _, connection = connection_in(route.tenant_id, route.connection_id)
    if connection is None or not connection.enabled:
        return _back(UNAVAILABLE, target)
    try:
        return begin(connection, target=target, email=email)
    except egress.Refused as exc:
        _refused(connection, exc, "start")
        return _back(REFUSED, target)
    except PROVIDER_ERRORS as exc:
        current_app.logger.warning("Organization single sign-on could not start: %r", exc)
        return _back(UNAVAILABLE, target)


@bp.get("/login/sso/org/callback")
def callback():
    state = request.args.get("state") or ""
    pending_all = dict(session.get(PENDING) or {})
    pending = pending_all.pop(state, None)
    session[PENDING] = pending_all
    target = pending.get("next") if pending else None
    if pending is None:
        events.record("", success=False, reason="oidc_bad_state", method=METHOD)
        return _back("That single sign-on attempt has expired or was not started here. Please try again.")
    if request.args.get("error"):
        provider.forget_state(state)
        if pending.get("test"):
            return _test_page(None, error=request.args["error"][:100])
        events.record("", success=False, reason="oidc_denied" if request.args["error"] == "access_denied"
                      else "oidc_provider_error", method=METHOD)
        if request.args["error"] == "access_denied":
            return _back("Single sign-on was cancelled, so you are not signed in.", target, "info")
        return _back(UNAVAILABLE, target)
    tenant, connection = connection_in(UUID(pending["tenant"]), UUID(pending["connection"]))
    testing = pending.get("test")
    if tenant is None or connection is None or not (connection.enabled or testing) or not tenant.is_usable:
        return _back(UNAVAILABLE, target)
    try:
        client = provider.checked(provider.client_for(connection), connection)
        not_repeatable()  # the code is spent at the provider: the edge must not run this twice
        token = client.authorize_access_token()
        claims = provider.claims_of(client, token)
    except MismatchingStateError:
        events.record("", success=False, reason="oidc_bad_state", method=METHOD)
        return _back("That single sign-on attempt has expired or was not started here. Please try again.", target)
    except egress.Refused as exc:
        _refused(connection, exc, "callback")
        if testing:
            return _test_page(connection, error=str(exc))
        events.record("", success=False, reason="oidc_provider_refused", method=METHOD)
        return _back(REFUSED, target)
    except PROVIDER_ERRORS as exc:
        current_app.logger.warning("Organization single sign-on callback failed: %r", exc)
        if testing:
            return _test_page(connection, error=provider_error(exc))
        events.record("", success=False, reason="oidc_provider_error", method=METHOD)
        return _back(UNAVAILABLE, target)
    if testing:
        if not current_user.is_authenticated or str(current_user.id) != testing:
            return _back("Sign in again to test the connection.")
        return _test_page(connection, claims=claims, tenant=tenant)
    try:
        with tenant_scope(db.session, tenant.id, actor="sso:sign-in"):
            outcome = members.sign_in(tenant, connection, claims)
    except IntegrityError:  # the same account linked or created by a concurrent sign-in
        db.session.rollback()
        return _back("Your account was being set up by another sign-in. Please try again.", target)
    if not outcome.ok:
        db.session.rollback()  # nothing of a refused sign-in stays (an account made on the way, say)
        known = outcome.user_id if outcome.user_id and db.session.get(User, outcome.user_id) else None
        events.record(outcome.email, success=False, reason=outcome.reason, user_id=known, method=METHOD)
        return _back(outcome.message, target)
    user = outcome.user
    home = target or url_for("dashboard.index", tenant_slug=tenant.slug)
    if outcome.joined:
        flash(f"Welcome to {tenant.name}! You joined through single sign-on.", "success")
    if user.has_mfa:
        session.clear()  # nothing is signed in until the second factor checks out
        session["second_factor"] = {"user": str(user.id), "at": time.time(), "next": home, "method": METHOD}
        return redirect(url_for("accounts.second_factor"), 303)
    sign_in.complete(user, METHOD)
    return redirect(home, 303)


def _test_page(connection: SsoConnection | None, *, claims: dict | None = None, tenant: Tenant | None = None,
               error: str | None = None):
    grant = None
    groups = group_rules.normalise((claims or {}).get("groups"))
    if claims is not None and connection is not None:
        with tenant_scope(db.session, connection.tenant_id, actor=None):  # read only: what the mappings would give
            grant = group_rules.resolve(connection.tenant_id, groups, connection_id=connection.id)
    response = current_app.make_response(render_template(
        "sso/test_result.html", connection=connection, claims=claims, groups=groups, grant=grant, error=error,
        tenant=tenant))
    response.headers["Cache-Control"] = "no-store"
    return response
