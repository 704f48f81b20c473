"""The command palette and the keyboard shortcuts in Chromium: Ctrl+K opens the palette over any
page (even from a field), typing finds a device by serial number, ArrowDown+Enter opens it, Escape
closes and gives focus back; `?` lists the shortcuts, `g d` goes to the devices, `/` focuses the
list's search, and none of them fires while typing. A member does not find a site or device of a
site they are not assigned to."""
from __future__ import annotations

import re

import pytest

from browser_support import new_tab, sign_in
from conftest import PASSWORD
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.sites.models import SiteAssignment

pytestmark = pytest.mark.browser

FOCUSED = "() => { const e = document.activeElement; return e ? (e.id || e.textContent.trim()) : null; }"


@pytest.fixture(scope="module")
def fleet(app, password_hash):
    from conftest import Factory
    factory = Factory(app, password_hash)
    owner, member = factory.user(name="Pat Palette"), factory.user(name="Max Member")
    t = factory.tenant(members={"owner": owner, "member": member}, sites=2, devices=2, name="Palette Works")
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        db.session.add(SiteAssignment(tenant_id=t["id"], site_id=t["sites"][0], user_id=member.id))
        db.session.commit()
    return {"t": t, "owner": owner, "member": member}


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical violations of the page as it is (an open dialog included)."""
    from axe_playwright_python.sync_playwright import Axe
    if page.evaluate("typeof window.axe") == "undefined":
        page.evaluate(Axe().axe_script)
    results = page.evaluate('axe.run(document, {"resultTypes": ["violations"]})')
    return [f"{v['id']}: {v['help']} at {[n['target'] for n in v['nodes']]}" for v in results["violations"]
            if v["impact"] in ("serious", "critical")]


def signed_in_tab(chromium, live_server, email):
    tab = new_tab(chromium, live_server, viewport={"width": 1280, "height": 900})
    sign_in(tab.page, email, PASSWORD)
    return tab.page.context, tab


def test_palette_and_shortcuts_by_keyboard(chromium, live_server, fleet):
    from playwright.sync_api import expect

    slug = fleet["t"]["slug"]
    context, tab = signed_in_tab(chromium, live_server, fleet["owner"].email)
    page = tab.page
    try:
        page.goto(f"/t/{slug}/devices/")
        dialog = page.get_by_role("dialog", name="Command palette")
        field = page.locator("#device-q")

        # From the list's own search field: Ctrl+K opens the palette, Escape gives focus back.
        field.focus()
        page.keyboard.type("gd?")  # typing in a field is typing, not shortcuts
        expect(page).to_have_url(re.compile(rf"/t/{slug}/devices/"))
        expect(page.locator("#shortcuts")).to_be_hidden()
        page.keyboard.press("Control+k")
        expect(dialog).to_be_visible()
        search = dialog.get_by_label("Search")
        expect(search).to_be_focused()
        box, width = dialog.bounding_box(), page.viewport_size["width"]
        assert abs(box["x"] + box["width"] / 2 - width / 2) < 2, box  # centred
        expect(dialog.get_by_role("link", name=re.compile("^Dashboard"))).to_be_visible()  # the pages, at once
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(field).to_be_focused()

        # Find a device by its serial number; ArrowDown reaches it, Enter opens it.
        page.keyboard.press("Control+k")
        page.keyboard.type(f"sn-{slug}-1-0")
        hit = dialog.get_by_role("link", name=re.compile(f"^Device 1-0 {slug}"))
        expect(hit).to_be_visible()
        expect(dialog.locator("a[href]")).to_have_count(1)
        assert serious_violations(page) == []
        page.keyboard.press("ArrowDown")
        expect(hit).to_be_focused()
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(rf"/t/{slug}/devices/[0-9a-f-]{{36}}$"))
        expect(page.get_by_role("heading", level=1)).to_contain_text(f"Device 1-0 {slug}")
        page.wait_for_load_state()  # as below: the keys are heard once the deferred scripts have run

        # `?` lists the shortcuts; Escape closes them.
        page.keyboard.press("?")
        shortcuts = page.get_by_role("dialog", name="Keyboard shortcuts")
        expect(shortcuts).to_be_visible()
        expect(shortcuts).to_contain_text("Go to devices")
        assert serious_violations(page) == []
        page.keyboard.press("Escape")
        expect(shortcuts).to_be_hidden()

        # `g` then `d`: the devices; `/` there focuses the list's search.
        page.keyboard.press("g")
        page.keyboard.press("d")
        expect(page).to_have_url(re.compile(rf"/t/{slug}/devices/$"))
        page.wait_for_load_state()  # the new page's deferred scripts listen for keys once it has loaded
        page.keyboard.press("/")
        expect(page.locator("#device-q")).to_be_focused()
        assert not tab.console_errors and not tab.page_errors, tab.console_errors + tab.page_errors
        tab.assert_no_csp_errors()
    finally:
        context.close()


def test_a_member_does_not_find_a_site_they_are_not_assigned_to(chromium, live_server, fleet):
    from playwright.sync_api import expect

    slug = fleet["t"]["slug"]
    context, tab = signed_in_tab(chromium, live_server, fleet["member"].email)
    page = tab.page
    try:
        page.keyboard.press("Control+k")
        dialog = page.get_by_role("dialog", name="Command palette")
        page.keyboard.type(f"Site 0 {slug}")
        expect(dialog.get_by_role("link", name=re.compile(f"^Site 0 {slug}"))).to_be_visible()
        page.keyboard.press("Control+a")
        page.keyboard.type(f"Site 1 {slug}")
        expect(dialog).to_contain_text("Nothing you can open matches")
        page.keyboard.press("Control+a")
        page.keyboard.type(f"sn-{slug}-1")  # the devices at the other site
        expect(dialog).to_contain_text("Nothing you can open matches")
        page.keyboard.press("Escape")

        # Outside an organization the palette lists the account's pages; its button opens it too.
        page.goto("/account/")
        page.get_by_role("button", name=re.compile("^Go to")).click()
        expect(dialog).to_be_visible()
        page.keyboard.type("two auth")  # "two" alone also finds "Password and two-factor"
        expect(dialog.locator("a[href]:visible")).to_have_count(1)
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile("/account/two-factor$"))
        assert not tab.console_errors and not tab.page_errors, tab.console_errors + tab.page_errors
    finally:
        context.close()
