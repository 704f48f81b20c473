"""Custom roles in Chromium: an owner creates a role from the roles page, gives it to a member
on the members page (htmx), and that member's pages shrink to what the role allows."""
from __future__ import annotations

import pytest

from browser_support import TIMEOUT_MS, sign_in
from conftest import PASSWORD
from test_browser_workspace import new_tab

pytestmark = pytest.mark.browser


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
        expect(page.locator('[data-role="Viewer"]')).to_contain_text("See devices and export them")
        page.get_by_role("link", name="New role", exact=True).click()
        page.get_by_label("Name").fill("Device reader")
        page.get_by_label("Description (optional)").fill("Reads devices, nothing else")
        page.get_by_label("See devices and export them").check()
        page.get_by_label("See sites").check()
        page.get_by_role("button", name="Create role").click()
        expect(page.locator(".flash")).to_contain_text("Saved the role Device reader")
        expect(page.locator('[data-role="Device reader"]')).to_contain_text("Reads devices, nothing else")

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
