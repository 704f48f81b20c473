"""The app shell in Chromium (issue 22): a sidebar at 1280 px whose grouped sections follow the
role, a head of one height in every organization (a logo, a brand colour, a long name) where
nothing wraps, and at 390 px a drawer behind the menu button, usable by keyboard, closed by
Escape, with no page scrolling sideways."""
from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from browser_support import Tab, new_tab, sign_in
from conftest import PASSWORD, SEED_PASSWORD
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.organization.branding import decode_logo
from portal.organization.models import TenantLogo
from portal.tenants.models import Tenant

pytestmark = pytest.mark.browser

OWNER_SECTIONS = {"Operate": ["Dashboard", "Sites", "Devices", "Tasks", "Analytics"],
                  "People": ["Members", "Invitations", "Roles"],
                  "Platform": ["Integrations", "API", "Audit log", "Settings"]}
# Each element of the shell: its box, and whether its text fits on one line.
BOXES = """() => Array.from(document.querySelectorAll(
    '.sidebar-head, .sidebar-head > *, .side-nav a, .side-nav button, .switcher-toggle')).filter(e => e.offsetParent)
  .map(e => { const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    const line = parseFloat(s.lineHeight) || parseFloat(s.fontSize) * 1.5;
    return {name: e.className || e.tagName, tag: e.tagName, text: e.innerText.trim().slice(0, 30), top: Math.round(r.top),
            height: Math.round(r.height), lines: (e.clientHeight - parseFloat(s.paddingTop) - parseFloat(s.paddingBottom)) / line}; })"""


@pytest.fixture
def open_context(chromium, live_server):
    contexts = []

    def make(width: int, height: int = 900) -> Tab:
        tab = new_tab(chromium, live_server, viewport={"width": width, "height": height})
        contexts.append(tab.page.context)
        return tab

    yield make
    for context in contexts:
        context.close()


def sections(page) -> dict[str, list[str]]:
    return page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('.side-nav .nav-group'))
        .map(g => [g.querySelector('.nav-heading').textContent.trim(),
                   Array.from(g.querySelectorAll('a')).map(a => a.textContent.trim())]))""")


def test_sidebar_sections_follow_the_role(open_context):
    from playwright.sync_api import expect

    owner = open_context(1280)
    sign_in(owner.page, "alice@acme.com", SEED_PASSWORD)
    page = owner.page
    page.goto("/t/acme-corp/devices/")
    nav = page.get_by_role("navigation", name="Acme Corporation")
    for heading, links in OWNER_SECTIONS.items():
        group = nav.get_by_role("group", name=heading)
        expect(group).to_be_visible()
        assert [link.strip() for link in group.get_by_role("link").all_inner_texts()] == links
    expect(nav.get_by_role("link", name="Devices")).to_have_attribute("aria-current", "page")
    assert page.locator('.side-nav a[aria-current="page"]').count() == 1
    account = page.get_by_role("navigation", name="Account")
    for name in ("My tasks", "Alice Johnson"):
        expect(account.get_by_role("link", name=name)).to_be_visible()
    expect(account.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.locator("#bell summary")).to_be_visible()
    expect(page.locator("#tenant-switcher .switcher-toggle")).to_have_text("Acme Corporation")
    # Outside a tenant the sidebar keeps the organization used last.
    page.goto("/account")
    expect(page.get_by_role("navigation", name="Acme Corporation").get_by_role("link", name="Devices")).to_be_visible()
    expect(page.get_by_role("navigation", name="Account").get_by_role("link", name="Alice Johnson")) \
        .to_have_attribute("aria-current", "page")
    owner.assert_no_csp_errors()

    member = open_context(1280)
    sign_in(member.page, "bob@acme.com", SEED_PASSWORD)
    member.page.goto("/t/acme-corp/")
    seen = sections(member.page)
    nav = member.page.get_by_role("navigation", name="Acme Corporation")
    expect(nav.get_by_role("link", name="Devices")).to_be_visible()
    for hidden in ("Roles", "Invitations", "Settings", "Integrations", "API", "Audit log"):
        expect(nav.get_by_role("link", name=hidden)).to_have_count(0)
    shown = [link for links in seen.values() for link in links]
    owners = [link for links in OWNER_SECTIONS.values() for link in links]
    assert set(shown) < set(owners) and len(shown) < len(owners), seen


def branded_tenants(factory, app, owner) -> list[dict]:
    """Three organizations of one owner: plain, a very long name, a logo with a brand colour."""
    plain = factory.tenant(members={"owner": owner}, sites=0, devices=0, name="Plain Shell")
    long = factory.tenant(members={"owner": owner}, sites=0, devices=0,
                          name="The Extraordinarily Long Named International Holding Company of Shells")
    logo = factory.tenant(members={"owner": owner}, sites=0, devices=0, name="Logo Shell")
    picture = io.BytesIO()
    Image.new("RGB", (300, 200), (180, 35, 24)).save(picture, "PNG")  # a tall-ish logo, 3:2
    image = decode_logo(picture.getvalue(), "logo.png")
    with app.app_context(), tenant_scope(db.session, logo["id"], actor="test:setup"):
        db.session.add(TenantLogo(tenant_id=logo["id"], media_type=image.media_type, content=image.content,
                                  sha256=image.sha256, width=image.width, height=image.height))
        tenant = db.session.get(Tenant, logo["id"])
        tenant.settings = {**(tenant.settings or {}), "branding": {"accent": "#0b6e4f", "logo": image.sha256[:16]}}
        db.session.commit()
    return [plain, long, logo]


def test_shell_head_has_one_height_and_nothing_wraps(open_context, factory, app):
    from playwright.sync_api import expect

    owner = factory.user(name="Shelly Ownerwithaverylongname Fitzgerald-Montgomery")
    tenants = branded_tenants(factory, app, owner)
    tab = open_context(1280)
    sign_in(tab.page, owner.email, PASSWORD)
    page = tab.page
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 844 if width == 390 else 900})
        measured = {}
        for t in tenants:
            page.goto(f"/t/{t['slug']}/")
            expect(page.locator("#tenant-switcher .switcher-toggle")).to_be_attached()
            if t is tenants[2]:
                expect(page.locator(".sidebar-head img.tenant-logo")).to_be_visible()
            head = page.locator(".sidebar-head").bounding_box()
            main = page.locator("main h1").bounding_box()
            first_link = page.locator(".side-nav a").first.bounding_box() if width == 1280 else None
            measured[t["slug"]] = (head["height"], round(main["y"]), first_link and round(first_link["y"]))
            boxes = page.evaluate(BOXES)
            wrapped = [b for b in boxes if b["tag"] != "IMG" and b["name"] != "sidebar-head" and b["lines"] > 1.5]
            assert not wrapped, f"{t['slug']} @{width}: wraps {wrapped}"
            head_box = next(b for b in boxes if b["name"] == "sidebar-head")
            outside = [b for b in boxes if b["name"] != "sidebar-head" and b["top"] < head_box["top"] + head_box["height"]
                       and (b["top"] < head_box["top"] or b["top"] + b["height"] > head_box["top"] + head_box["height"])]
            assert not outside, f"{t['slug']} @{width}: sticks out of the head {outside}"
            links = [b for b in boxes if b["tag"] == "A" and b["name"] in ("A", "who")]
            assert len({b["height"] for b in links}) <= 1, links
        assert len(set(measured.values())) == 1, f"@{width}: head height and content position differ {measured}"
    tab.assert_no_csp_errors()


def focused_inside(page, selector: str) -> bool:
    return page.evaluate("(s) => !!document.activeElement && !!document.activeElement.closest(s)", selector)


def test_phone_drawer_by_keyboard_and_no_sideways_scroll(open_context):
    from playwright.sync_api import expect

    tab = open_context(390, 844)
    sign_in(tab.page, "alice@acme.com", SEED_PASSWORD)
    page = tab.page
    page.goto("/t/acme-corp/")
    menu = page.get_by_role("button", name="Menu")
    drawer = page.locator("#site-nav")
    nav = page.get_by_role("navigation", name="Acme Corporation")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_have_attribute("aria-controls", "site-nav")
    expect(drawer).to_be_hidden()
    expect(page.locator(".sidebar-head .context")).to_have_text("Acme Corporation")

    # Enter on the button opens it, the focus goes in; Tab walks it; Escape closes it and the
    # focus comes back to the button.
    menu.focus()
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav.get_by_role("link", name="Settings")).to_be_visible()
    # The script moves the focus in once the drawer shows: wait for it rather than read it at once.
    page.wait_for_function("document.querySelector('#site-nav').contains(document.activeElement)", timeout=5000)
    for _ in range(3):
        page.keyboard.press("Tab")
        assert focused_inside(page, "#site-nav")
    assert page.evaluate("document.getElementById('main').inert") is True
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()
    assert page.evaluate("document.getElementById('main').inert") is False

    # Through the drawer to a page by keyboard; a click outside closes it too.
    page.keyboard.press("Space")
    expect(drawer).to_be_visible()
    nav.get_by_role("link", name="Members").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Members")
    expect(drawer).to_be_hidden()
    menu.click()
    expect(drawer).to_be_visible()
    page.mouse.click(370, 600)
    expect(drawer).to_be_hidden()

    for path in ("/t/acme-corp/", "/t/acme-corp/devices/", "/t/acme-corp/members/", "/t/acme-corp/roles/",
                 "/t/acme-corp/settings/", "/account"):
        page.goto(path)
        for state in ("closed", "open"):
            if state == "open":
                menu.click()
                expect(drawer).to_be_visible()
            scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert scroll <= inner, f"{path} ({state} drawer) is {scroll}px wide at {inner}px"
    tab.assert_no_csp_errors()
