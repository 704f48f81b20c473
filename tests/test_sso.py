"""Single sign-on end to end against a real OpenID provider on loopback (oidc-provider-mock):
the test client starts the flow, the provider is answered over HTTP as a browser would, and
its redirect comes back to the portal's callback."""
from __future__ import annotations

import os
import secrets
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import oidc_provider_mock
import pyotp
import pytest
import requests
import sqlalchemy as sa

from conftest import Factory, csrf_from, make_app
from portal.accounts.models import User
from portal.database.context import tenant_scope, user_scope
from portal.extensions import db
from portal.invitations.models import Invitation
from portal.tenancy.models import MembershipRole
from portal.security import mfa
from portal.security.models import LoginEvent

NO_ACCOUNT = "No account for {}. Ask an organization admin for an invitation."


class Provider:
    """The provider as the tests drive it: claims set over its API, consent answered over HTTP."""

    def __init__(self, issuer: str):
        self.issuer, self.http = issuer, requests.Session()

    def user(self, email: str, verified: bool = True, sub: str | None = None, **claims) -> str:
        sub = sub or f"sub-{secrets.token_hex(6)}"
        response = self.http.put(f"{self.issuer}/users/{sub}",
                                 json={"email": email, "email_verified": verified, **claims}, timeout=5)
        assert response.status_code == 204
        return sub

    def answer(self, authorize_url: str, **form) -> str:
        """POST the consent form; returns the path and query it redirects the browser back to."""
        response = self.http.post(authorize_url, data=form, allow_redirects=False, timeout=5)
        assert response.status_code == 302, response.text[:300]
        back = urlsplit(response.headers["Location"])
        assert back.path == "/login/sso/callback"
        return f"{back.path}?{back.query}"


@pytest.fixture(scope="module")
def provider():
    # One host name everywhere: the provider's issuer follows the Host of each request.
    with oidc_provider_mock.run_server_in_thread() as server:
        yield Provider(f"http://127.0.0.1:{server.server_port}")


def sso_app_for(db_urls, provider, **overrides):
    return make_app(db_urls, OIDC_ISSUER=provider.issuer, OIDC_CLIENT_ID="portal",
                    OIDC_CLIENT_SECRET="portal-client-secret", **overrides)


@pytest.fixture(scope="module")
def sso_app(db_urls, app, provider):  # `app` has migrated the database
    return sso_app_for(db_urls, provider)


@pytest.fixture(scope="module")
def signup_app(db_urls, app, provider):
    return sso_app_for(db_urls, provider, OIDC_ALLOW_SIGNUP=True)


@pytest.fixture
def make(sso_app, password_hash) -> Factory:
    return Factory(sso_app, password_hash)


def start(client, provider, next_url=None) -> str:
    response = client.get("/login/sso", query_string={"next": next_url} if next_url else None)
    assert response.status_code == 302
    url = response.headers["Location"]
    assert url.startswith(f"{provider.issuer}/oauth2/authorize?")
    return url


def sso(client, provider, sub=None, *, deny=False, next_url=None):
    """The whole round trip; returns the portal's answer to the callback."""
    url = start(client, provider, next_url)
    return client.get(provider.answer(url, **({"action": "deny"} if deny else {"sub": sub})))


def flashed(client) -> str:
    return client.get("/login").get_data(as_text=True)


def signed_in_at(client) -> str | None:
    """Where / sends this browser when signed in (None: to the login page)."""
    location = client.get("/").headers["Location"]
    return None if location.startswith("/login") else location


def load_user(app, email: str) -> User | None:
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(sa.func.lower(User.email) == email.lower()))
        if user is not None:
            db.session.expunge(user)
        return user


def last_event(app, email: str):
    """Read as the owner role: a failure with no account is a row nobody reads under RLS."""
    engine = sa.create_engine(app.config["MIGRATION_DATABASE_URL"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(LoginEvent).where(LoginEvent.email == email.lower())
                                .order_by(LoginEvent.created_at.desc()).limit(1)).one()
    finally:
        engine.dispose()


def invite(app, tenant: dict, email: str, expires_in=timedelta(days=1)) -> None:
    with app.app_context(), tenant_scope(db.session, tenant["id"], actor="test:setup"):
        db.session.add(Invitation(tenant_id=tenant["id"], email=email, role=MembershipRole.MEMBER,
                                  token_hash=os.urandom(32), created_at=datetime.now(timezone.utc) - timedelta(days=2),
                                  expires_at=datetime.now(timezone.utc) + expires_in))
        db.session.commit()


def fresh_email() -> str:
    return f"sso-{secrets.token_hex(5)}@example.com"


def test_button_and_routes_only_when_configured(client, sso_app):
    assert "single sign-on" not in client.get("/login").get_data(as_text=True)
    assert client.get("/login/sso").status_code == 404
    assert client.get("/login/sso/callback?code=x&state=y").status_code == 404
    page = sso_app.test_client().get("/login?next=/t/acme-corp/devices/").get_data(as_text=True)
    assert "Sign in with single sign-on" in page
    assert 'href="/login/sso?next=/t/acme-corp/devices/"' in page


def test_authorization_request_is_code_flow_with_pkce_state_and_nonce(sso_app, provider):
    query = parse_qs(urlsplit(start(sso_app.test_client(), provider)).query)
    assert query["response_type"] == ["code"] and query["client_id"] == ["portal"]
    assert query["scope"] == ["openid email profile"]
    assert query["redirect_uri"] == ["http://localhost/login/sso/callback"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert len(query["state"][0]) >= 20 and len(query["nonce"][0]) >= 20


def test_existing_account_is_linked_by_verified_email_then_found_by_subject(sso_app, provider, make):
    user = make.user()
    tenant = make.tenant(members={"member": user})
    sub = provider.user(user.email.upper(), verified=True)  # case does not matter
    client = sso_app.test_client()
    response = sso(client, provider, sub)
    assert response.status_code == 303 and response.headers["Location"] == f"/t/{tenant['slug']}/"
    assert client.get(f"/t/{tenant['slug']}/").status_code == 200
    linked = load_user(sso_app, user.email)
    assert (linked.oidc_issuer, linked.oidc_subject) == (provider.issuer, sub)
    event = last_event(sso_app, user.email)
    assert (event.success, event.method, event.user_id) == (True, "oidc", user.id)

    # The provider's email changes (and is not even verified): the subject still signs in, nothing else changes.
    provider.user("someone-else@example.com", verified=False, sub=sub)
    again = sso_app.test_client()
    assert sso(again, provider, sub).headers["Location"] == f"/t/{tenant['slug']}/"
    assert signed_in_at(again) == f"/t/{tenant['slug']}/"
    assert load_user(sso_app, user.email).oidc_subject == sub
    assert load_user(sso_app, "someone-else@example.com") is None


def test_unverified_email_is_refused_and_not_linked(sso_app, provider, make):
    user = make.user()
    make.tenant(members={"member": user})
    client = sso_app.test_client()
    response = sso(client, provider, provider.user(user.email, verified=False))
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert f"Your single sign-on provider has not verified {user.email}." in flashed(client)
    assert signed_in_at(client) is None
    assert load_user(sso_app, user.email).oidc_subject is None
    event = last_event(sso_app, user.email)
    assert (event.success, event.reason, event.method) == (False, "oidc_email_unverified", "oidc")


def test_new_user_with_a_pending_invitation_is_created(sso_app, provider, make):
    tenant = make.tenant()
    email = fresh_email()
    invite(sso_app, tenant, email)
    client = sso_app.test_client()
    sub = provider.user(email.replace("sso-", "SSO-"), name="Nadia New")
    response = sso(client, provider, sub)
    assert response.status_code == 303 and response.headers["Location"] == "/tenants"
    assert client.get("/tenants").status_code == 200
    user = load_user(sso_app, email)
    assert user.email == email and user.name == "Nadia New"
    assert user.email_verified_at is not None and user.password_hash is None
    assert (user.oidc_issuer, user.oidc_subject) == (provider.issuer, sub)


def test_new_user_without_invitation_is_refused(sso_app, provider, make):
    email, expired = fresh_email(), fresh_email()
    invite(sso_app, make.tenant(), expired, expires_in=timedelta(seconds=-1))  # an expired one does not count
    for address in (email, expired):
        client = sso_app.test_client()
        assert sso(client, provider, provider.user(address)).headers["Location"] == "/login"
        assert NO_ACCOUNT.format(address) in flashed(client)
        assert signed_in_at(client) is None and load_user(sso_app, address) is None
        assert last_event(sso_app, address).reason == "oidc_no_account"


def test_allow_signup_creates_the_account(signup_app, provider):
    email = fresh_email()
    client = signup_app.test_client()
    response = sso(client, provider, provider.user(email, given_name="Sam", family_name="Signup"))
    assert response.headers["Location"] == "/tenants"
    user = load_user(signup_app, email)
    assert user.name == "Sam Signup" and user.password_hash is None and user.email_verified_at is not None
    # Still only with a verified address.
    other = fresh_email()
    assert sso(signup_app.test_client(), provider, provider.user(other, verified=False)).headers["Location"] == "/login"
    assert load_user(signup_app, other) is None


def test_denied_consent_returns_to_login(sso_app, provider):
    client = sso_app.test_client()
    response = sso(client, provider, deny=True, next_url="/t/acme-corp/")
    assert response.status_code == 303 and response.headers["Location"] == "/login?next=/t/acme-corp/"
    assert "Single sign-on was cancelled" in flashed(client)
    assert signed_in_at(client) is None
    # A provider that returns the state with the error (as RFC 6749 and Keycloak do) ends that attempt.
    state = parse_qs(urlsplit(start(client, provider)).query)["state"][0]
    response = client.get(f"/login/sso/callback?error=access_denied&state={state}")
    assert response.headers["Location"] == "/login"
    with client.session_transaction() as session:
        assert f"_state_sso_{state}" not in session


def test_bad_missing_or_replayed_state_returns_to_login(sso_app, provider, make):
    user = make.user()
    make.tenant(members={"member": user})
    sub = provider.user(user.email)
    client = sso_app.test_client()
    back = provider.answer(start(client, provider), sub=sub)
    query = parse_qs(urlsplit(back).query)
    for url in (f"/login/sso/callback?code={query['code'][0]}&state=forged",
                f"/login/sso/callback?code={query['code'][0]}", "/login/sso/callback"):
        response = client.get(url)
        assert response.status_code == 303 and response.headers["Location"] == "/login"
        assert "That single sign-on attempt has expired or was not started here." in flashed(client)
    # Another browser cannot finish this attempt (the state lives in the browser that started it).
    stranger = sso_app.test_client()
    assert stranger.get(back).headers["Location"] == "/login" and signed_in_at(stranger) is None
    assert signed_in_at(client) is None
    assert load_user(sso_app, user.email).oidc_subject is None
    # The real callback still works once, then its state is spent.
    assert client.get(back).headers["Location"].startswith("/t/")
    other = sso_app.test_client()
    assert other.get(back).headers["Location"] == "/login"


def test_disabled_account_is_refused(sso_app, provider, make):
    user = make.user(is_active=False)  # older code's write: the status follows (migration 0019's trigger)
    client = sso_app.test_client()
    assert sso(client, provider, provider.user(user.email)).headers["Location"] == "/login"
    assert "Your account is suspended" in flashed(client)
    assert signed_in_at(client) is None and load_user(sso_app, user.email).oidc_subject is None


def test_account_linked_to_another_subject_is_not_relinked(sso_app, provider, make):
    user = make.user()
    make.tenant(members={"member": user})
    first = provider.user(user.email)
    assert sso(sso_app.test_client(), provider, first).headers["Location"].startswith("/t/")
    client = sso_app.test_client()  # another provider account now claims the same verified address
    assert sso(client, provider, provider.user(user.email)).headers["Location"] == "/login"
    assert f"{user.email} is already linked to another single sign-on account." in flashed(client)
    assert load_user(sso_app, user.email).oidc_subject == first


def test_next_is_kept_and_kept_on_site(sso_app, provider, make):
    user = make.user()
    tenant = make.tenant(members={"member": user})
    sub = provider.user(user.email)
    devices = f"/t/{tenant['slug']}/devices/"
    assert sso(sso_app.test_client(), provider, sub, next_url=devices).headers["Location"] == devices
    assert sso(sso_app.test_client(), provider, sub,
               next_url="//evil.example/steal").headers["Location"] == f"/t/{tenant['slug']}/"


def test_two_factor_is_still_required(sso_app, provider, make):
    user = make.user()
    tenant = make.tenant(members={"member": user})
    secret = mfa.new_secret()
    with sso_app.app_context(), user_scope(db.session, user.id):  # as the person (RLS), as their account page does
        row = db.session.get(User, user.id)
        mfa.enable(row, secret)
        row.totp_last_step = 0
        db.session.commit()
    client = sso_app.test_client()
    response = sso(client, provider, provider.user(user.email), next_url=f"/t/{tenant['slug']}/sites/")
    assert response.status_code == 303 and response.headers["Location"] == "/login/verify"
    assert signed_in_at(client) is None  # nothing signed in before the code
    page = client.get("/login/verify")
    assert page.status_code == 200
    done = client.post("/login/verify", data={"code": pyotp.TOTP(secret).at(int(time.time())),
                                              "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert done.status_code == 303 and done.headers["Location"] == f"/t/{tenant['slug']}/sites/"
    assert signed_in_at(client) == f"/t/{tenant['slug']}/"


def test_provider_down_is_a_message_not_an_error(db_urls, app):
    import socket
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broken = make_app(db_urls, OIDC_ISSUER=f"http://127.0.0.1:{port}", OIDC_CLIENT_ID="portal",
                      OIDC_CLIENT_SECRET="x")
    client = broken.test_client()
    response = client.get("/login/sso")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "Single sign-on is not available right now." in flashed(client)
