"""Custom roles in Chromium: an owner creates a role from the roles page, gives it to a member
on the members page (htmx), and that member's pages shrink to what the role allows."""
from __future__ import annotations

import pytest

from browser_support import TIMEOUT_MS, sign_in
from conftest import PASSWORD
from test_browser_workspace import new_tab

pytestmark = pytest.mark.browser


def tab_to(page, element_id: str, most: int = 40):
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == element_id:
            return
    raise AssertionError(f"Tab never reached #{element_id}")


def row(page, sentence: str):
    """The matrix row whose header is a permission's sentence."""
    return page.locator("table.matrix tr").filter(has=page.get_by_role("rowheader", name=sentence, exact=True))


def test_owner_creates_a_custom_role_and_the_member_sees_less(chromium, live_server, factory):
    owner, member = factory.user(name="Rita Owner"), factory.user(name="Sam Member")
    t = factory.tenant(members={"owner": owner, "member": member}, sites=2, devices=2,
                       slug=f"ws-roles-{factory._unique()}")
    slug = t["slug"]

    context, tab = new_tab(chromium, live_server)
    try:
        page = tab.page
        expect = sign_in(page, owner.email, PASSWORD)
        page.goto(f"/t/{slug}/roles/")
        # The matrix: a check in Viewer's column (the fourth) of "See devices and export them".
        expect(row(page, "See devices and export them").locator("td").nth(3)).to_have_text("✓granted")
        expect(row(page, "Add, edit, move, import and decommission devices").locator("td").nth(3)) \
            .to_have_text("·not granted")
        page.get_by_role("link", name="New role", exact=True).click()
        page.get_by_label("Name").fill("Device reader")
        page.get_by_label("Description (optional)").fill("Reads devices, nothing else")
        page.get_by_label("See devices and export them").check()
        page.get_by_label("See sites").check()
        page.get_by_role("button", name="Create role").click()
        expect(page.locator(".flash")).to_contain_text("Saved the role Device reader")
        expect(page.locator('[data-role-notes="Device reader"]')).to_contain_text("Reads devices, nothing else")
        expect(page.get_by_role("columnheader", name="Device reader")).to_be_visible()

        # Its column of toggles, by keyboard only: Tab down the column, Space toggles, Enter saves.
        page.get_by_role("link", name="Edit Device reader").click()
        page.get_by_label("Description (optional)").focus()
        tab_to(page, "perm-sites:view")
        page.keyboard.press("Space")
        expect(page.get_by_label("See sites")).not_to_be_checked()
        tab_to(page, "perm-devices:status")
        page.keyboard.press("Space")
        expect(page.get_by_label("Change the status of devices they can see")).to_be_checked()
        page.get_by_role("button", name="Save changes").focus()
        page.keyboard.press("Enter")
        expect(page.locator(".flash")).to_contain_text("Saved the role Device reader")
        expect(row(page, "Change the status of devices they can see").locator("td").nth(4)).to_have_text("✓granted")
        expect(row(page, "See sites").locator("td").nth(4)).to_have_text("·not granted")

        # At 390 px the matrix scrolls in its own box, the permission column stays, the page does not.
        page.set_viewport_size({"width": 390, "height": 800})
        box = page.get_by_role("region", name="What each role allows")
        assert box.evaluate("e => e.scrollWidth > e.clientWidth")
        header = row(page, "See sites").locator("th")
        left = header.bounding_box()["x"]
        box.evaluate("e => e.scrollLeft = e.scrollWidth")
        assert box.evaluate("e => e.scrollLeft") > 0 and header.bounding_box()["x"] == left
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.set_viewport_size({"width": 1280, "height": 800})

        page.goto(f"/t/{slug}/members/")
        page.evaluate("window.__sameDocument = true")
        page.get_by_label(f"Role of {member.email}").select_option(label="Device reader")
        expect(page.locator(f'tr[data-email="{member.email}"]')).to_be_visible()
        page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
        assert page.evaluate("window.__sameDocument") is True, "changing the role reloaded the page"
        page.reload()
        expect(page.get_by_label(f"Role of {member.email}")).to_have_value(
            page.get_by_label(f"Role of {member.email}").locator("option", has_text="Device reader")
            .get_attribute("value"))
        tab.assert_no_csp_errors()
    finally:
        context.close()

    context, tab = new_tab(chromium, live_server)
    try:
        page = tab.page
        expect = sign_in(page, member.email, PASSWORD)
        page.goto(f"/t/{slug}/")
        expect(page.get_by_text("Your role:")).to_contain_text("Device reader")
        tabs = page.locator("nav.side-nav").first  # the organization's sections in the sidebar
        expect(tabs).to_contain_text("Devices")
        expect(tabs).not_to_contain_text("Members")
        expect(tabs).not_to_contain_text("Roles")
        page.goto(f"/t/{slug}/devices/")
        # No sites:see-all and no assignment: the list says why it is empty.
        expect(page.locator("#device-list")).to_contain_text("No devices to show")
        response = page.goto(f"/t/{slug}/members/")
        assert response.status == 403
        tab.assert_no_csp_errors()
    finally:
        context.close()


def test_owner_gives_a_further_role_by_keyboard_and_the_member_holds_both(app, chromium, live_server, factory):
    """Role sets (issue 26): the member row's "Further roles" disclosure, by keyboard, saved
    with htmx; the member's dashboard names both roles and their pages grow by what it adds."""
    from test_roles import make_role
    owner, member = factory.user(name="Rita Owner"), factory.user(name="Vic Viewer")
    t = factory.tenant(members={"owner": owner, "viewer": member}, sites=1, devices=1,
                       slug=f"ws-sets-{factory._unique()}")
    slug = t["slug"]
    make_role(app, t["id"], "Site planner", ["tenant:view", "sites:view", "sites:write"])

    context, tab = new_tab(chromium, live_server)
    try:
        page = tab.page
        expect = sign_in(page, owner.email, PASSWORD)
        page.goto(f"/t/{slug}/members/")
        page.wait_for_load_state()
        page.evaluate("window.__sameDocument = true")
        row_ = page.locator(f'tr[data-email="{member.email}"]')
        summary = row_.locator("details.further-roles summary")
        expect(summary).to_contain_text("Further roles")
        summary.focus()
        page.keyboard.press("Enter")  # opens the disclosure
        box = row_.get_by_label("Site planner")
        expect(box).to_be_visible()
        box.focus()
        page.keyboard.press("Space")
        expect(box).to_be_checked()
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")  # "Save roles"
        expect(page.locator(f'tr[data-email="{member.email}"] details.further-roles summary')) \
            .to_contain_text("+ Site planner")
        page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
        assert page.evaluate("window.__sameDocument") is True, "saving the roles reloaded the page"
        tab.assert_no_csp_errors()
    finally:
        context.close()

    context, tab = new_tab(chromium, live_server)
    try:
        page = tab.page
        expect = sign_in(page, member.email, PASSWORD)
        page.goto(f"/t/{slug}/")
        expect(page.get_by_text("Your role:")).to_contain_text("Viewer + Site planner")
        assert page.goto(f"/t/{slug}/sites/new").status == 200  # what the further role adds
        tab.assert_no_csp_errors()
    finally:
        context.close()
