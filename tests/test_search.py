"""The command palette's search (/t/<slug>/search): what each role finds, through the same
visibility rules as the pages, in the sample data (alice owns Acme; bob is a member assigned to
Acme Headquarters only; carol is a viewer and field technician at the Acme Warehouse), and that odd input is never a 5xx."""
from __future__ import annotations

import re

import pytest

from conftest import SEED_PASSWORD, login

ACME = "/t/acme-corp"
HX = {"HX-Request": "true"}


def signed_in(app, email: str):
    client = app.test_client()
    login(client, email, SEED_PASSWORD)
    return client


@pytest.fixture(scope="module")
def alice(app):
    return signed_in(app, "alice@acme.com")


@pytest.fixture(scope="module")
def bob(app):
    return signed_in(app, "bob@acme.com")


@pytest.fixture(scope="module")
def carol(app):
    return signed_in(app, "carol@acme.com")


def found(client, q: str, tenant: str = ACME) -> dict[str, list[tuple[str, str]]]:
    """{kind: [(label, href), ...]} of the palette's fragment for `q`."""
    response = client.get(f"{tenant}/search", query_string={"q": q}, headers=HX)
    assert response.status_code == 200, response.status_code
    html = response.get_data(as_text=True)
    assert "<html" not in html  # a fragment, not a page
    groups = {}
    for kind, body in re.findall(r'<h2 id="palette-group-\d+">([^<]+)</h2>(.*?)</section>', html, re.S):
        groups[kind] = re.findall(r'<a class="palette-hit" href="([^"]+)"><span class="palette-label">([^<]*)</span>',
                                  body)
        groups[kind] = [(label, href) for href, label in groups[kind]]
    return groups


def labels(groups, kind: str) -> list[str]:
    return [label for label, _ in groups.get(kind, [])]


def test_the_owner_finds_sites_and_devices_by_name_and_serial(alice):
    groups = found(alice, "acme head")
    assert labels(groups, "Sites") == ["Acme Headquarters"]
    assert re.fullmatch(rf"{ACME}/sites/[0-9a-f-]{{36}}", groups["Sites"][0][1])
    assert labels(found(alice, "hq lobby"), "Devices") == ["HQ Lobby Camera"]
    by_serial = found(alice, "ACME-CAM")
    assert labels(by_serial, "Devices") == ["HQ Lobby Camera", "Warehouse Dock Camera"]
    href = by_serial["Devices"][0][1]
    assert re.fullmatch(rf"{ACME}/devices/[0-9a-f-]{{36}}", href)
    assert alice.get(href).status_code == 200
    assert labels(found(alice, "warehouse"), "Sites") == ["Acme Warehouse"]


def test_the_owner_finds_tasks_members_and_pages(alice):
    groups = found(alice, "camera")
    assert "Replace the HQ lobby camera" in labels(groups, "Tasks")
    assert alice.get(groups["Tasks"][0][1]).status_code == 200
    people = found(alice, "bob")
    assert labels(people, "Members") == ["Bob Smith"]
    assert people["Members"][0][1] == f"{ACME}/members/?q=bob@acme.com"
    assert labels(found(alice, "sett"), "Pages") == ["Settings", "Branding", "Security policy", "Plan and usage",
                                                      "Data export", "Danger zone"]  # the settings' sections
    assert labels(found(alice, "invite"), "Pages") == ["Invitations"]


def test_bob_never_finds_what_he_is_not_assigned_to(bob):
    warehouse = found(bob, "warehouse")
    assert not labels(warehouse, "Sites") and not labels(warehouse, "Devices")
    assert labels(found(bob, "ACME-CAM"), "Devices") == ["HQ Lobby Camera"]  # not the warehouse's camera
    assert labels(found(bob, "acme"), "Sites") == ["Acme Headquarters"]
    camera_tasks = labels(found(bob, "camera"), "Tasks")
    assert "Replace the HQ lobby camera" in camera_tasks
    assert "Check the dock camera mount" not in camera_tasks  # at the warehouse
    assert not labels(found(bob, "settings"), "Pages")  # members do not open the organization's settings


@pytest.mark.parametrize("who", ["alice", "bob", "carol"])
def test_every_page_offered_opens(request, who):
    """The pages listed with an empty query are the ones the role may open: none answers 403."""
    client = request.getfixturevalue(who)
    pages = found(client, "")
    assert list(pages) == ["Pages"]  # an empty query searches nothing else
    for label, href in pages["Pages"]:
        assert client.get(href).status_code == 200, f"{who}: {label} ({href})"
    offered = set(labels(pages, "Pages"))
    assert {"Dashboard", "Devices", "Account"} <= offered
    if who == "carol":  # a viewer: no invitations, roles, settings, audit or creating anything
        assert not offered & {"Invitations", "Roles", "Settings", "Audit log", "API clients", "Integrations", "New device",
                             "New task"}


def test_a_member_finds_only_the_sites_and_devices_assigned_to_them(carol):
    groups = found(carol, "acme")
    assert labels(groups, "Sites") == ["Acme Warehouse"] and not labels(found(carol, "HQ"), "Devices")


def test_another_tenants_things_never_appear(alice, app):
    assert found(alice, "office router") == {}
    assert found(alice, "TS-RTR") == {}
    assert found(alice, "charlie") == {}
    assert not labels(found(alice, "build server"), "Tasks")
    # Not a member of TechStart: the same 404 as a tenant that does not exist.
    assert alice.get("/t/techstart/search?q=router", headers=HX).status_code == 404
    consultant = signed_in(app, "consultant@external.com")  # a member of both: each tenant its own
    assert labels(found(consultant, "handbook", "/t/techstart"), "Tasks") == ["Write the office IT handbook"]
    assert not labels(found(consultant, "handbook"), "Tasks")
    assert labels(found(consultant, "warehouse dock"), "Devices") == ["Warehouse Dock Camera"]  # an admin at Acme
    assert not labels(found(consultant, "warehouse dock", "/t/techstart"), "Devices")


@pytest.mark.parametrize("q", ["", " ", "%", "_", "\\", "'", "a'b", "HQ\x1b", "\x01\x7f\u200b", "\ud7ff", "💡",
                               "x" * 150, "ACME " * 40, "<script>alert(1)</script>", "' OR 1=1 --", "::*"])
def test_odd_queries_answer_200(alice, q):
    response = alice.get(f"{ACME}/search", query_string={"q": q}, headers=HX)
    assert response.status_code == 200
    assert "<script>" not in response.get_data(as_text=True)


def test_control_characters_are_spaces(alice):
    assert labels(found(alice, "HQ\x07lobby\u200b"), "Devices") == ["HQ Lobby Camera"]
    # NUL is refused before any view (PostgreSQL text cannot hold it): a 4xx, never a 5xx.
    assert alice.get(f"{ACME}/search", query_string={"q": "HQ\x00"}, headers=HX).status_code == 400


@pytest.mark.parametrize("q", ["x" * 1001, "a" * 1_000_000])
def test_too_long_queries_answer_400(alice, q):
    assert alice.get(f"{ACME}/search", query_string={"q": q}, headers=HX).status_code == 400


def test_invalid_utf8_answers_400(alice):
    assert alice.get(f"{ACME}/search?q=%ff%fe", headers=HX).status_code == 400


def test_without_htmx_a_search_page(alice):
    response = alice.get(f"{ACME}/search", query_string={"q": "hq lobby"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<h1>Search</h1>" in html
    assert "HQ Lobby Camera" in html and 'id="search-group-' in html


def test_every_page_carries_the_palette(alice, app):
    html = alice.get(f"{ACME}/devices/").get_data(as_text=True)
    assert f'data-search-url="{ACME}/search"' in html and f'data-go-d="{ACME}/devices/"' in html
    account = alice.get("/account/profile").get_data(as_text=True)  # outside a tenant: the account's pages, listed
    assert 'id="palette"' in account and "data-search-url" not in account
    assert 'href="/account/two-factor"' in account and "data-go-d" not in account
    assert 'id="palette"' not in app.test_client().get("/login").get_data(as_text=True)
