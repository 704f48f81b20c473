"""Connected apps: OAuth 2.0 authorization code with PKCE, driven by Authlib's own client
(OAuth2Session, S256) against the live server; the person's consent through the HTML pages
with `requests`, as a browser would post them (tests/test_browser_oauth.py does it in Chromium)."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError as OAuth2Error
from conftest import PASSWORD, csrf_from, csrf_token, login

from portal.api import grants
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.tenancy import Permission, TenantContext
from portal.tenancy.roles import Role
from portal.tenants.models import Tenant

REDIRECT = "http://127.0.0.1:8765/callback"
ALL = Role("test", "Test", "", frozenset(Permission))


@pytest.fixture(autouse=True)
def _plain_http(monkeypatch):
    # Authlib's client refuses http:// unless told: the live server is plain loopback HTTP.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


def register(app, tenant_id, scopes, *, public=True, uris=(REDIRECT,), name="Field App"):
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        tenant = db.session.get(Tenant, tenant_id)
        client, secret = grants.create_app(TenantContext(tenant, None, ALL),
                                           grants.AppData(name, list(uris), public, list(scopes)))
        client_id = str(client.id)
        db.session.commit()
    return client_id, secret


def person(base, email) -> requests.Session:
    """A signed-in browser session on the live server."""
    s = requests.Session()
    token = csrf_from(s.get(base + "/login").text)
    r = s.post(base + "/login", data={"email": email, "password": PASSWORD, "csrf_token": token}, allow_redirects=False)
    assert r.status_code == 303, r.status_code
    return s


def session_for(client_id, scope, secret=None, redirect_uri=REDIRECT) -> OAuth2Session:
    return OAuth2Session(client_id, secret, redirect_uri=redirect_uri, scope=scope, code_challenge_method="S256",
                         token_endpoint_auth_method="none" if secret is None else "client_secret_basic")


def consent(base, who: requests.Session, oauth: OAuth2Session, decision="allow", **params):
    """The authorization request, the consent page and the person's answer: (location, verifier, page)."""
    verifier = generate_token(48)
    url, _ = oauth.create_authorization_url(base + "/oauth/authorize", code_verifier=verifier, **params)
    page = who.get(url, allow_redirects=False)
    assert page.status_code == 200, page.text[:500]
    answer = who.post(url, data={"csrf_token": csrf_from(page.text), "decision": decision}, allow_redirects=False)
    assert answer.status_code == 303
    return answer.headers["Location"], verifier, page.text


def tokens(base, who, oauth, **params):
    location, verifier, _ = consent(base, who, oauth, **params)
    return oauth.fetch_token(base + "/oauth/token", authorization_response=location, code_verifier=verifier)


def api(base, token, method="GET", path="/api/v1/devices", **kwargs):
    return requests.request(method, base + path, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def code_of(location):
    return parse_qs(urlsplit(location).query)["code"][0]


def test_metadata_names_the_endpoints_and_s256_only(live_server):
    meta = requests.get(live_server + "/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == live_server
    assert meta["authorization_endpoint"] == live_server + "/oauth/authorize"
    assert meta["token_endpoint"] == live_server + "/oauth/token"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert set(meta["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert meta["response_types_supported"] == ["code"]
    assert "devices:view" in meta["scopes_supported"]


def test_whole_code_flow_with_pkce_refresh_rotation_and_reuse_detection(app, live_server, world):
    base, a = live_server, world["a"]
    client_id, _ = register(app, a["id"], ["devices:view", "sites:view"])
    who = person(base, world["users"]["member"].email)
    oauth = session_for(client_id, "devices:view")
    location, verifier, page = consent(base, who, oauth, state="xyz-123")
    # The consent page names the app, the organization and the scope in words.
    assert "Field App" in page and f"Tenant {a['slug']}" in page and "See devices and export them" in page
    assert parse_qs(urlsplit(location).query)["state"] == ["xyz-123"]
    token = oauth.fetch_token(base + "/oauth/token", authorization_response=location, code_verifier=verifier)
    assert token["token_type"].lower() == "bearer" and token["scope"] == "devices:view"
    assert token["refresh_token"].startswith("prt_") and token["access_token"].startswith("pat_")
    # The member sees no site (assigned to none): the token sees what they see, as them.
    listed = api(base, token["access_token"])
    assert listed.status_code == 200 and listed.json()["items"] == []
    assert api(base, token["access_token"], path="/api/v1/sites").status_code == 403  # not consented

    # Rotation: the refresh token works once and comes back new.
    first_refresh = token["refresh_token"]
    again = oauth.refresh_token(base + "/oauth/token", refresh_token=first_refresh)
    assert again["refresh_token"] != first_refresh
    assert api(base, again["access_token"]).status_code == 200
    # Reuse: the first one again is refused and ends the whole grant, every token with it.
    with pytest.raises(OAuth2Error) as refused:
        oauth.refresh_token(base + "/oauth/token", refresh_token=first_refresh)
    assert refused.value.error == "invalid_grant"
    assert api(base, again["access_token"]).status_code == 401
    with pytest.raises(OAuth2Error):
        oauth.refresh_token(base + "/oauth/token", refresh_token=again["refresh_token"])
    with app.app_context(), tenant_scope(db.session, a["id"], actor="test:setup"):
        reason = db.session.execute(sa.text("SELECT revoked_reason FROM oauth_grants WHERE client_ref = :c"),
                                    {"c": client_id}).scalar()
        assert reason == "refresh_reuse"


def test_wrong_verifier_wrong_redirect_and_reused_code(app, live_server, world):
    base, a = live_server, world["a"]
    client_id, _ = register(app, a["id"], ["devices:view"], uris=(REDIRECT, "https://app.example.com/cb"))
    who = person(base, world["users"]["viewer"].email)
    oauth = session_for(client_id, "devices:view")

    location, verifier, _ = consent(base, who, oauth)
    with pytest.raises(OAuth2Error) as wrong:
        oauth.fetch_token(base + "/oauth/token", authorization_response=location, code_verifier=generate_token(48))
    assert wrong.value.error == "invalid_grant"

    # Another registered redirect URI than the one the code was issued for: refused.
    other = session_for(client_id, "devices:view", redirect_uri="https://app.example.com/cb")
    with pytest.raises(OAuth2Error) as moved:
        other.fetch_token(base + "/oauth/token", code=code_of(location), code_verifier=verifier)
    assert moved.value.error == "invalid_grant"

    # The right verifier still redeems it, once; a second redemption ends what the first got.
    token = oauth.fetch_token(base + "/oauth/token", authorization_response=location, code_verifier=verifier)
    assert api(base, token["access_token"]).status_code == 200
    with pytest.raises(OAuth2Error) as reused:
        oauth.fetch_token(base + "/oauth/token", authorization_response=location, code_verifier=verifier)
    assert reused.value.error == "invalid_grant"
    assert api(base, token["access_token"]).status_code == 401

    # An unregistered redirect URI at the authorization endpoint: the person is told, never redirected.
    stray = session_for(client_id, "devices:view", redirect_uri="https://evil.example.net/cb")
    url, _ = stray.create_authorization_url(base + "/oauth/authorize", code_verifier=generate_token(48))
    page = who.get(url, allow_redirects=False)
    assert page.status_code == 400 and "not valid" in page.text and "Location" not in page.headers


def test_pkce_s256_is_required_and_implicit_is_refused(app, live_server, world):
    base = live_server
    client_id, _ = register(app, world["a"]["id"], ["devices:view"])
    who = person(base, world["users"]["member"].email)
    common = {"client_id": client_id, "redirect_uri": REDIRECT, "state": "s1"}
    for extra in ({"response_type": "code"},  # no challenge at all
                  {"response_type": "code", "code_challenge": "a" * 43, "code_challenge_method": "plain"},
                  {"response_type": "code", "code_challenge": "a" * 43}):  # plain by default
        r = who.get(base + "/oauth/authorize", params={**common, **extra}, allow_redirects=False)
        assert r.status_code == 302, extra
        query = parse_qs(urlsplit(r.headers["Location"]).query)
        assert query["error"] == ["invalid_request"] and query["state"] == ["s1"]
    r = who.get(base + "/oauth/authorize", params={**common, "response_type": "token"}, allow_redirects=False)
    assert parse_qs(urlsplit(r.headers["Location"]).query)["error"] == ["unsupported_response_type"]


def test_consent_denied_goes_back_with_access_denied(app, live_server, world):
    base = live_server
    client_id, _ = register(app, world["a"]["id"], ["devices:view"])
    who = person(base, world["users"]["member"].email)
    location, _, _ = consent(base, who, session_for(client_id, "devices:view"), decision="deny", state="st-9")
    assert location.startswith(REDIRECT)
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["st-9"] and "code" not in query
    assert grants_of(app, world["a"]["id"], client_id) == []


def grants_of(app, tenant_id, client_id):
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        return db.session.execute(sa.text("SELECT revoked_reason FROM oauth_grants WHERE client_ref = :c "
                                          "ORDER BY created_at"), {"c": client_id}).scalars().all()


def test_a_scope_beyond_the_person_and_a_role_lowered_after_consent(app, live_server, world, factory):
    base, a = live_server, world["a"]
    client_id, _ = register(app, a["id"], ["devices:view", "devices:write"])
    oauth = session_for(client_id, "devices:view devices:write")
    # A viewer may allow devices:write (told their role does not allow it): the token cannot write.
    viewer = person(base, world["users"]["viewer"].email)
    location, verifier, page = consent(base, viewer, oauth)
    assert "does not allow this" in page
    token = oauth.fetch_token(base + "/oauth/token", authorization_response=location, code_verifier=verifier)
    assert set(token["scope"].split()) == {"devices:view", "devices:write"}
    assert api(base, token["access_token"], "POST", json={}).status_code == 403
    assert api(base, token["access_token"]).status_code == 200

    # An admin's token writes; lowered to viewer, the same token cannot; removed, it is dead.
    admin = world["users"]["admin"]
    token = tokens(base, person(base, admin.email), session_for(client_id, "devices:view devices:write"))
    assert api(base, token["access_token"], "POST", json={}).status_code == 422  # past the scope check
    made = api(base, token["access_token"], "POST", json={"name": "Via App", "type": "sensor",
                                                          "serial_number": f"VIA-{a['slug']}",
                                                          "site_id": str(a["sites"][0])})
    assert made.status_code == 201, made.text
    owner = app.test_client()
    login(owner, world["users"]["owner"].email)
    # The audit log names the person, and the app they acted through.
    assert "admin user (through Field App) created device ‘Via App’" in owner.get(
        f"/t/{a['slug']}/audit/").get_data(as_text=True)
    r = owner.post(f"/t/{a['slug']}/members/{admin.id}/role", data={"role": "viewer", "csrf_token": csrf_token(owner)})
    assert r.status_code in (200, 303), r.status_code
    assert api(base, token["access_token"], "POST", json={}).status_code == 403
    assert api(base, token["access_token"]).status_code == 200
    r = owner.post(f"/t/{a['slug']}/members/{admin.id}/remove", data={"csrf_token": csrf_token(owner)})
    assert r.status_code == 303
    assert api(base, token["access_token"]).status_code == 401
    assert "member_removed" in grants_of(app, a["id"], client_id)


def test_suspension_ends_grants_and_reactivation_does_not_bring_them_back(app, live_server, world):
    base, a = live_server, world["a"]
    client_id, _ = register(app, a["id"], ["devices:view"])
    member = world["users"]["member"]
    token = tokens(base, person(base, member.email), session_for(client_id, "devices:view"))
    owner = app.test_client()
    login(owner, world["users"]["owner"].email)
    assert owner.post(f"/t/{a['slug']}/members/{member.id}/suspend", data={"csrf_token": csrf_token(owner)}).status_code == 303
    assert api(base, token["access_token"]).status_code == 401
    assert owner.post(f"/t/{a['slug']}/members/{member.id}/reactivate",
                      data={"csrf_token": csrf_token(owner)}).status_code == 303
    assert api(base, token["access_token"]).status_code == 401
    assert grants_of(app, a["id"], client_id) == ["member_suspended"]


def test_sign_in_first_then_back_to_the_request(app, live_server, world):
    base = live_server
    client_id, _ = register(app, world["a"]["id"], ["devices:view"])
    oauth = session_for(client_id, "devices:view")
    url, _ = oauth.create_authorization_url(base + "/oauth/authorize", code_verifier=generate_token(48))
    s = requests.Session()
    r = s.get(url, allow_redirects=False)
    assert r.status_code == 302 and "/login?next=" in r.headers["Location"]
    login_page = s.get(base + r.headers["Location"] if r.headers["Location"].startswith("/") else r.headers["Location"])
    form_url = login_page.url
    r = s.post(form_url, data={"email": world["users"]["member"].email, "password": PASSWORD,
                               "csrf_token": csrf_from(login_page.text)}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith("/oauth/authorize?")
    assert "Allow Field App" in s.get(base + r.headers["Location"]).text
    # Someone who is not a member of the app's organization cannot allow it.
    outsider = person(base, world["outsider"].email)
    page = outsider.get(url, allow_redirects=False)
    assert page.status_code == 403 and "not an active member" in page.text


def test_confidential_app_account_page_and_owner_revocation(app, live_server, world):
    base, a = live_server, world["a"]
    client_id, secret = register(app, a["id"], ["devices:view"], public=False, name="Server App")
    assert secret.startswith("pcs_")
    member = world["users"]["member"]
    who = person(base, member.email)
    oauth = session_for(client_id, "devices:view", secret=secret)
    token = tokens(base, who, oauth)
    # Introspection by the app names the person; a public client may not introspect.
    seen = requests.post(base + "/oauth/introspect", data={"token": token["access_token"]}, auth=(client_id, secret)).json()
    assert seen["active"] and seen["sub"] == str(member.id)

    page = who.get(base + "/account/connected-apps").text
    assert "Server App" in page and f"Tenant {a['slug']}" in page and "See devices and export them" in page
    grant_id = re.search(r'id="grant-([0-9a-f-]{36})"', page).group(1)
    r = who.post(f"{base}/account/connected-apps/{grant_id}/revoke", data={"csrf_token": csrf_from(page)},
                 allow_redirects=False)
    assert r.status_code == 303
    assert api(base, token["access_token"]).status_code == 401
    assert "No connected apps" in who.get(base + "/account/connected-apps").text

    # The owner sees the organization's grants and revokes one.
    token = tokens(base, who, oauth)
    owner = app.test_client()
    login(owner, world["users"]["owner"].email)
    page = owner.get(f"/t/{a['slug']}/api-clients/apps").get_data(as_text=True)
    assert "Server App" in page and member.email in page
    grant_id = re.search(r'id="grant-([0-9a-f-]{36})"', page).group(1)
    assert owner.post(f"/t/{a['slug']}/api-clients/grants/{grant_id}/revoke",
                      data={"csrf_token": csrf_token(owner)}).status_code == 303
    assert api(base, token["access_token"]).status_code == 401
    assert grants_of(app, a["id"], client_id) == ["person", "owner"]
    audit = owner.get(f"/t/{a['slug']}/audit/").get_data(as_text=True)
    assert "allowed ‘Server App’ to act for them" in audit and "revoked by an administrator" in audit


def test_registration_rules_page_and_command(app, world, client):
    owner = world["users"]["owner"]
    login(client, owner.email)
    slug = world["a"]["slug"]
    token = csrf_token(client)
    bad = client.post(f"/t/{slug}/api-clients/apps/new", data={
        "csrf_token": token, "name": "Bad", "redirect_uris": "http://app.example.com/cb", "client_type": "public",
        "scopes": ["devices:view"]})
    assert bad.status_code == 422 and "must use https" in bad.get_data(as_text=True)
    for uri in ("https://app.example.com/cb#x", "ftp://app.example.com/"):
        r = client.post(f"/t/{slug}/api-clients/apps/new", data={"csrf_token": token, "name": "Bad",
                                                                  "redirect_uris": uri, "client_type": "public",
                                                                  "scopes": ["devices:view"]})
        assert r.status_code == 422
    ok = client.post(f"/t/{slug}/api-clients/apps/new", data={
        "csrf_token": token, "name": "Good App", "client_type": "confidential", "scopes": ["devices:view"],
        "redirect_uris": "https://app.example.com/cb\nhttp://localhost:51234/cb\nhttp://[::1]/cb"})
    assert ok.status_code == 303
    shown = client.get(ok.headers["Location"]).get_data(as_text=True)
    assert "shown only this once" in shown and "pcs_" in shown
    assert "pcs_" not in client.get(ok.headers["Location"]).get_data(as_text=True)
    assert "Good App" in client.get(f"/t/{slug}/api-clients/apps").get_data(as_text=True)
    assert "Good App" not in client.get(f"/t/{slug}/api-clients/").get_data(as_text=True)

    runner = app.test_cli_runner()
    out = runner.invoke(args=["oauth-apps", "create", "--tenant", slug, "--name", "CLI App", "--redirect-uri",
                              "http://127.0.0.1/cb", "--scopes", "devices:view sites:view", "--public"])
    assert out.exit_code == 0, out.output
    assert re.search(r"client_id: [0-9a-f-]{36}", out.output) and "client_secret" not in out.output
    out = runner.invoke(args=["oauth-apps", "create", "--tenant", slug, "--name", "CLI Server", "--redirect-uri",
                              "https://srv.example.com/cb", "--scopes", "devices:view"])
    assert out.exit_code == 0 and "client_secret: pcs_" in out.output
    out = runner.invoke(args=["oauth-apps", "create", "--tenant", slug, "--name", "Nope", "--redirect-uri",
                              "http://example.com/cb", "--scopes", "devices:view"])
    assert out.exit_code != 0 and "must use https" in out.output


def test_public_app_cannot_use_client_credentials_nor_a_service_client_the_code_flow(app, live_server, world):
    base = live_server
    client_id, _ = register(app, world["a"]["id"], ["devices:view"])
    r = requests.post(base + "/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id})
    assert r.status_code in (400, 401) and r.json()["error"] in ("unauthorized_client", "invalid_client")
    # A client-credentials client cannot start the code flow: the person is told, nothing is redirected.
    from test_api import make_client
    service_id, _ = make_client(app, world["a"]["id"], ["devices:view"])
    who = person(base, world["users"]["member"].email)
    page = who.get(base + "/oauth/authorize", params={"response_type": "code", "client_id": service_id,
                                                      "redirect_uri": REDIRECT}, allow_redirects=False)
    assert page.status_code == 400 and "Location" not in page.headers


def test_app_revokes_its_refresh_token_and_revoke_grants_everywhere(app, live_server, world, factory):
    base, a = live_server, world["a"]
    member = world["users"]["member"]
    client_id, _ = register(app, a["id"], ["devices:view"])
    oauth = session_for(client_id, "devices:view")
    token = tokens(base, person(base, member.email), oauth)
    # RFC 7009 by a public app (client_id only): a refresh token takes its grant's access tokens with it.
    r = requests.post(base + "/oauth/revoke", data={"token": token["refresh_token"], "client_id": client_id,
                                                    "token_type_hint": "access_token"})
    assert r.status_code == 200
    assert api(base, token["access_token"]).status_code == 401
    assert grants_of(app, a["id"], client_id) == ["app_revoked"]

    # revoke_grants(user_id) with no tenant (the account's end of access): every organization's grant
    # ends, each organization's audit log says so.
    other = factory.tenant(members={"member": member})
    other_id, _ = register(app, other["id"], ["devices:view"], name="Other App")
    first = tokens(base, person(base, member.email), oauth)
    second = tokens(base, person(base, member.email), session_for(other_id, "devices:view"))
    with app.test_request_context():
        assert grants.revoke_grants(member.id) == 2
        db.session.commit()
    assert api(base, first["access_token"]).status_code == api(base, second["access_token"]).status_code == 401
    assert grants_of(app, other["id"], other_id) == ["account"]
    with app.app_context(), tenant_scope(db.session, other["id"], actor="test:setup"):
        assert db.session.execute(sa.text("SELECT count(*) FROM audit_logs WHERE action = 'oauth_grant.revoke'")
                                  ).scalar() == 1
