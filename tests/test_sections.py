"""Sectioned settings and account: each section a page of its own behind the same permission as
its forms, with a nav that marks where you are; a form comes back to its own section, after
success (303) and with its inline errors (422); the old addresses lead to the right section."""
from __future__ import annotations

import re

import pytest

from conftest import csrf_token, login
from portal.organization.views import SECTIONS as SETTINGS
from portal.profile.views import SECTIONS as ACCOUNT


def post(client, url, **data):
    return client.post(url, data={"csrf_token": csrf_token(client), **data})


@pytest.fixture
def org(app, factory):
    users = {r: factory.user(name=f"{r.title()} Sections") for r in ("owner", "admin", "member", "viewer")}
    t = factory.tenant(members=users, sites=1, devices=2)
    clients = {}
    for r, u in {**users, "stranger": factory.user(name="Stranger Sections")}.items():
        clients[r] = app.test_client()
        login(clients[r], u.email)
    return {"t": t, "slug": t["slug"], "c": clients}


def path_of(app, endpoint: str, slug: str | None = None) -> str:
    """The section's address as the app routes it (areas declare their own sections)."""
    return app.url_map.bind("localhost").build(endpoint, {"tenant_slug": slug} if slug else {})


def current_section(html: str) -> list[str]:
    """The labels of the links the section nav marks as the current page."""
    nav = re.search(r'<nav class="section-nav" aria-label="[^"]+">(.*?)</nav>', html, re.S).group(1)
    return re.findall(r'aria-current="page">([^<]+)</a>', nav)


def test_each_settings_section_is_a_page_for_owners_only(app, org):
    slug, c = org["slug"], org["c"]
    assert [label for _, label in SETTINGS] == ["General", "Branding", "Security", "Plan and usage", "Data export",
                                                "Single sign-on", "Provisioning", "Danger zone"]
    r = c["owner"].get(f"/t/{slug}/settings/")
    assert r.status_code == 303 and r.headers["Location"] == f"/t/{slug}/settings/general"
    for endpoint, label in SETTINGS:
        url = path_of(app, endpoint, slug)
        r = c["owner"].get(url)
        html = r.get_data(as_text=True)
        assert r.status_code == 200, url
        assert current_section(html) == [label], url
        assert f"<title>{label} · Settings · " in html
        assert 'aria-label="Settings"' in html and html.count('class="section-nav"') == 1
        for endpoint_, _ in SETTINGS:  # every section linked from every other
            assert f'href="{path_of(app, endpoint_, slug)}"' in html
        for role in ("admin", "member", "viewer"):  # tenant:manage and sso:manage are the owners'
            assert c[role].get(url).status_code == 403, (role, url)
        assert c["stranger"].get(url).status_code == 404, url


def test_each_account_section_is_a_page_for_whoever_is_signed_in(app, org):
    c = org["c"]["member"]
    r = c.get("/account/")
    assert r.status_code == 303 and r.headers["Location"] == "/account/profile"
    assert [label for _, label in ACCOUNT] == ["Profile", "Password and two-factor", "Sessions",
                                               "Security activity", "Notifications", "Connected apps", "Your data"]
    for endpoint, label in ACCOUNT:
        html = c.get(path_of(app, endpoint)).get_data(as_text=True)
        assert current_section(html) == [label] and 'aria-label="Account"' in html
        assert f"<title>{label} · Your account · Portal</title>" in html
    assert app.test_client().get("/account/sessions").status_code == 302  # to sign in


def test_each_section_holds_its_own_forms_only(org):
    slug, owner = org["slug"], org["c"]["owner"]
    forms = {"general": "/settings/general", "branding": "/settings/logo", "security": "/settings/security",
             "export": "/settings/export", "danger": "/settings/delete"}
    for section, action in forms.items():
        html = owner.get(f"/t/{slug}/settings/{section}").get_data(as_text=True)
        actions = set(re.findall(r'<form method="post" action="/t/[^/]+(/settings/[^"]*)"', html))
        assert action in actions and not ({*forms.values()} - {action}) & actions, (section, actions)
    account = org["c"]["member"]
    assert 'action="/account/password"' in account.get("/account/security").get_data(as_text=True)
    assert 'action="/account/password"' not in account.get("/account/profile").get_data(as_text=True)
    assert 'action="/notifications/preferences"' in account.get("/account/notifications").get_data(as_text=True)
    assert "data-session=" in account.get("/account/sessions").get_data(as_text=True)


@pytest.mark.parametrize("url, data, section, error", [
    ("/settings/general", {"name": "  "}, "General", "Give the organization a name."),
    ("/settings/general", {"name": "Org", "slug": "Not Valid!"}, "General", "lowercase letters"),
    ("/settings/security", {"ip_allowlist": "10.0.0.0/33"}, "Security", "is not a network"),
    ("/settings/accent", {"accent": "yellow"}, "Branding", "#"),
    ("/settings/logo", {}, "Branding", "Choose an image file"),
    ("/settings/delete", {"confirm": "not-the-slug", "password": "x"}, "Danger zone", "to confirm"),
])
def test_a_refused_settings_form_comes_back_to_its_section_with_the_error(org, url, data, section, error):
    slug, owner = org["slug"], org["c"]["owner"]
    r = post(owner, f"/t/{slug}{url}", **data)
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and current_section(html) == [section]
    assert re.search(r'<p class="error field-error" id="[^"]+">[^<]*' + re.escape(error), html), html[-3000:]
    assert 'aria-invalid="true"' in html


@pytest.mark.parametrize("url, data, section", [
    ("/settings/general", {"name": "Renamed Sections"}, "general"),
    ("/settings/security", {"max_sessions": "5"}, "security"),
    ("/settings/accent", {"accent": "#0b6e4f"}, "branding"),
    ("/settings/accent/reset", {}, "branding"),
    ("/settings/logo/remove", {}, "branding"),
    ("/settings/export", {}, "export"),
])
def test_a_saved_settings_form_comes_back_to_its_section(org, url, data, section):
    slug, owner = org["slug"], org["c"]["owner"]
    r = post(owner, f"/t/{slug}{url}", **data)
    assert r.status_code == 303 and r.headers["Location"] == f"/t/{slug}/settings/{section}"


def test_account_forms_come_back_to_their_sections(org):
    c = org["c"]["member"]
    r = post(c, "/account/name", name="")
    assert r.status_code == 422 and current_section(r.get_data(as_text=True)) == ["Profile"]
    assert "field-error" in r.get_data(as_text=True)
    r = post(c, "/account/name", name="Renamed Member")
    assert r.status_code == 303 and r.headers["Location"] == "/account/profile"
    r = post(c, "/account/email", email="not an address")
    assert r.status_code == 422 and current_section(r.get_data(as_text=True)) == ["Profile"]
    r = post(c, "/account/password", current="wrong-password", password="x" * 16, confirm="x" * 16)
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and current_section(html) == ["Password and two-factor"]
    assert "That is not your current password." in html
    r = post(c, "/notifications/preferences", device_error="nonsense")
    assert r.status_code == 303 and r.headers["Location"] == "/account/notifications"
    r = post(c, "/account/sessions/revoke-others")
    assert r.status_code == 303 and r.headers["Location"] == "/account/sessions"


def test_export_is_one_url_with_two_renderings(org):
    slug, owner = org["slug"], org["c"]["owner"]
    page = owner.get(f"/t/{slug}/settings/export")
    fragment = owner.get(f"/t/{slug}/settings/export", headers={"HX-Request": "true"})
    assert "<html" in page.get_data(as_text=True) and current_section(page.get_data(as_text=True)) == ["Data export"]
    assert "<html" not in fragment.get_data(as_text=True) and 'id="export-state"' in fragment.get_data(as_text=True)
    assert "HX-Request" in fragment.headers.get("Vary", "")


def test_links_to_former_anchors_lead_to_their_sections(org):
    slug, owner = org["slug"], org["c"]["owner"]
    dashboard = owner.get(f"/t/{slug}/").get_data(as_text=True)  # the first steps: require two-factor
    assert f'href="/t/{slug}/settings/security"' in dashboard
    signins = owner.get(f"/t/{slug}/audit/sign-ins").get_data(as_text=True)
    assert f'href="/t/{slug}/settings/security"' in signins
    notifications = org["c"]["member"].get("/notifications/").get_data(as_text=True)
    assert 'href="/account/notifications"' in notifications
