"""The first usable portal, as a user (or an attacker) sees it."""
from __future__ import annotations

import re

import sqlalchemy as sa

from conftest import SEED_PASSWORD, csrf_from, csrf_token, login, make_app
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.tenancy.models import Membership, MembershipStatus
from portal.tenants.models import Tenant


def stats(html: str) -> dict:
    return {k: int(v) for k, v in re.findall(r'data-stat="(\w+)">(\d+)', html)} | \
        {k: int(v) for k, v in re.findall(r'data-status="(\w+)">(\d+)', html)}


def test_login_page_and_sign_in_lands_in_first_tenant(client):
    assert client.get("/").headers["Location"].endswith("/login")
    page = client.get("/login")
    assert page.status_code == 200 and 'autocomplete="current-password"' in page.get_data(as_text=True)
    response = login(client, "consultant@external.com", SEED_PASSWORD)
    # No tenant used yet: the first by name.
    assert response.headers["Location"] == "/t/acme-corp/"


def test_sign_in_lands_in_last_used_tenant(app, world):
    user = world["users"]["viewer"]
    client = app.test_client()
    login(client, user.email)
    # A second tenant, then switch to it: the next sign-in lands there.
    from conftest import Factory
    other = Factory(app, None).tenant(members={"member": user}, name="Zz Last Used")
    client.post("/tenants/switch", data={"slug": other["slug"], "csrf_token": csrf_token(client)})
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    fresh = app.test_client()
    assert login(fresh, user.email).headers["Location"] == f"/t/{other['slug']}/"


def test_wrong_password_and_unknown_email_look_the_same(client):
    def attempt(email, password):
        token = csrf_from(client.get("/login").get_data(as_text=True))
        return client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    wrong = attempt("alice@acme.com", "not the password")
    unknown = attempt("nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    for r in (wrong, unknown):
        assert "That email and password do not match an account." in r.get_data(as_text=True)


def test_login_requires_csrf_token(client):
    response = client.post("/login", data={"email": "alice@acme.com", "password": SEED_PASSWORD})
    assert response.status_code == 400
    assert client.get("/t/acme-corp/").status_code == 302  # not signed in


def test_next_parameter_cannot_redirect_off_site(client):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login?next=//evil.example/steal", data={
        "email": "alice@acme.com", "password": SEED_PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/t/acme-corp/"


def test_next_parameter_returns_to_the_page_asked_for(client):
    assert client.get("/t/acme-corp/devices/").headers["Location"].startswith("/login?next=")
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login?next=/t/acme-corp/devices/", data={
        "email": "alice@acme.com", "password": SEED_PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/t/acme-corp/devices/"


def test_logout_is_post_only(client):
    login(client, "alice@acme.com", SEED_PASSWORD)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no CSRF token
    assert client.post("/logout", data={"csrf_token": csrf_token(client)}).status_code == 303
    assert client.get("/t/acme-corp/").status_code == 302


def test_dashboard_counts_from_the_sample_data(client):
    login(client, "alice@acme.com", SEED_PASSWORD)
    html = client.get("/t/acme-corp/").get_data(as_text=True)
    assert "<h1>Acme Corporation</h1>" in html
    assert stats(html) == {"sites": 2, "members": 5, "devices": 9, "online": 5, "offline": 1,
                           "maintenance": 1, "error": 1, "decommissioned": 1}


def test_sites_and_devices_lists_show_only_this_tenant(client):
    # Dave is a member assigned to TechStart Office (an unassigned member would see no sites).
    login(client, "dave@techstart.io", SEED_PASSWORD)
    sites = client.get("/t/techstart/sites/").get_data(as_text=True)
    assert "TechStart Office" in sites and "Acme" not in sites and "America/New_York" in sites
    devices = client.get("/t/techstart/devices/").get_data(as_text=True)
    assert set(re.findall(r"<code>([A-Z]+)-", devices)) == {"TS"}


def test_device_list_keyset_pages_and_htmx_fragment(app, factory, world):
    t = factory.tenant(members={"owner": world["users"]["owner"]}, sites=1, devices=120)
    client = app.test_client()
    login(client, world["users"]["owner"].email)
    seen, url, pages = [], f"/t/{t['slug']}/devices/", 0
    while url:
        response = client.get(url, headers={"HX-Request": "true"})
        html = response.get_data(as_text=True)
        assert "HX-Request" in response.headers["Vary"] and "<html" not in html
        seen += re.findall(r"<code>(SN-[^<]+)</code>", html)
        nxt = re.search(r'rel="next" href="[^"]+" hx-get="([^"]+)"', html)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
        pages += 1
    assert pages == 3 and len(seen) == 120 and len(set(seen)) == 120
    full = client.get(f"/t/{t['slug']}/devices/")
    assert "<html" in full.get_data(as_text=True) and "HX-Request" in full.headers["Vary"]


def test_switcher_lists_only_active_memberships(app, world, factory):
    user = world["users"]["member"]
    suspended = factory.tenant(members={"member": user}, name="Suspended Membership Org")
    with app.app_context(), tenant_scope(db.session, suspended["id"], actor="test:setup"):
        db.session.execute(sa.update(Membership).where(Membership.tenant_id == suspended["id"])
                           .values(status=MembershipStatus.SUSPENDED))
        db.session.commit()
    client = app.test_client()
    login(client, user.email)
    fragment = client.get("/tenants", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert re.findall(r'name="slug" value="([^"]+)"', fragment) == [world["a"]["slug"]]
    assert "<html" not in fragment
    # A suspended membership loses access at once, with the same 404 as a stranger.
    assert client.get(f"/t/{suspended['slug']}/").status_code == 404


def test_switch_with_htmx_redirects_and_refuses_foreign_tenants(client):
    login(client, "consultant@external.com", SEED_PASSWORD)
    token = csrf_token(client)
    response = client.post("/tenants/switch", data={"slug": "techstart", "csrf_token": token},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.headers["HX-Redirect"] == "/t/techstart/"
    plain = client.post("/tenants/switch", data={"slug": "beta-solutions", "csrf_token": token})
    assert plain.status_code == 303 and plain.headers["Location"] == "/t/beta-solutions/"
    assert client.post("/tenants/switch", data={"slug": "demo-company", "csrf_token": token}).status_code == 404
    assert client.post("/tenants/switch", data={"slug": "techstart"}).status_code == 400  # CSRF


def test_system_admin_console(client, app):
    response = login(client, "admin@system.local", SEED_PASSWORD)
    assert response.headers["Location"] == "/admin/tenants"
    # Other tests add tenants: walk the keyset pages, which must neither repeat nor skip.
    seen, url = [], "/admin/tenants"
    while url:
        html = client.get(url).get_data(as_text=True)
        table = re.search(r'<div id="tenant-table">.*?</div>', html, re.S).group(0)
        seen += re.findall(r"<code>([a-z0-9-]+)</code>", table)
        more = re.search(r'href="(/admin/tenants\?after=[^"]+)">Next page', html)
        url = more.group(1).replace("&amp;", "&") if more else None
    with app.app_context():
        every = set(db.session.scalars(sa.select(Tenant.slug)))
    assert len(seen) == len(set(seen)) and set(seen) == every  # by name: no tenant repeated or skipped
    assert {"acme-corp", "techstart", "beta-solutions", "demo-company"} <= set(seen)
    other = app.test_client()
    assert other.get("/admin/tenants").status_code == 404
    login(other, "alice@acme.com", SEED_PASSWORD)
    assert other.get("/admin/tenants").status_code == 404


def test_healthz(client, db_urls):
    ok = client.get("/healthz")
    assert ok.status_code == 200 and ok.json == {"status": "ok", "database": "ok"}
    down = make_app(db_urls, DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1",
                    CHECK_RLS=False)
    response = down.test_client().get("/healthz")
    assert response.status_code == 503 and response.json["database"] == "unreachable"


def test_error_pages_in_layout_and_as_fragments(client):
    page = client.get("/no/such/page")
    assert page.status_code == 404 and "<html" in page.get_data(as_text=True)
    fragment = client.get("/no/such/page", headers={"HX-Request": "true"})
    assert fragment.status_code == 404 and "<html" not in fragment.get_data(as_text=True)
    assert "Not found" in fragment.get_data(as_text=True)


def test_security_headers_and_request_id(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    for directive in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "script-src 'self'"):
        assert directive in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert re.fullmatch(r"[0-9a-f]{16}", response.headers["X-Request-ID"])
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_oversized_request_bodies_are_refused(db_urls, app):
    small = make_app(db_urls, MAX_CONTENT_LENGTH=1024)
    response = small.test_client().post("/login", data={"email": "x" * 4096, "password": "y"})
    assert response.status_code == 413 and "Too large" in response.get_data(as_text=True)


def test_nul_characters_are_refused_not_a_500(client):
    assert client.post("/login", data={"email": "a\x00@example.com", "password": "x",
                                       "csrf_token": csrf_token_anonymous(client)}).status_code == 400
    login(client, "alice@acme.com", SEED_PASSWORD)
    for url in ("/t/acme-corp/devices/?q=a%00b", "/t/acme-corp/members/?q=a%00", "/t/acme-corp/sites/?after=a%00",
                "/t/a%00b/", "/admin/tenants?after=%00"):
        response = client.get(url)
        assert response.status_code in (400, 404), url
        assert "NUL character" in response.get_data(as_text=True) or response.status_code == 404


def csrf_token_anonymous(client) -> str:
    return csrf_from(client.get("/login").get_data(as_text=True))


def test_token_links_are_masked_in_the_request_log(client, caplog):
    import logging
    with caplog.at_level(logging.INFO, logger="portal.request"):
        client.get("/password/reset/SECRET-RESET-TOKEN-123")
        client.get("/invitations/SECRET-INVITE-TOKEN-456")
    text = caplog.text
    assert "SECRET-RESET-TOKEN" not in text and "SECRET-INVITE-TOKEN" not in text
    assert "/password/reset/<token>" in text and "/invitations/<token>" in text


def test_member_without_sites_is_told_why_the_device_list_is_empty(client):
    login(client, "consultant@external.com", SEED_PASSWORD)  # a viewer at Beta Solutions, with no assigned site
    html = client.get("/t/beta-solutions/devices/").get_data(as_text=True)
    assert "you see the devices of the sites you are assigned to" in html and "<code>BETA" not in html
