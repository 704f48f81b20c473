"""Sites and devices in Chromium: an owner assigns a member to a site (htmx, no reload); the
member then finds that site's devices with the live search and filters, and the URL keeps
the list's state through a reload and the back button."""
from __future__ import annotations

import re

import pytest

from browser_support import RECORD_CSP_VIOLATIONS, TIMEOUT_MS, Tab, sign_in
from conftest import PASSWORD

pytestmark = pytest.mark.browser


def new_tab(chromium, base):
    context = chromium.new_context(base_url=base)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    return context, Tab(context.new_page())


def test_assign_a_member_to_a_site_then_filter_the_device_list(chromium, live_server, factory):
    owner, member = factory.user(name="Olive Owner"), factory.user(name="Max Member")
    t = factory.tenant(members={"owner": owner, "member": member}, sites=2, devices=3,
                       slug=f"ws-browser-{factory._unique()}")
    slug, site_b = t["slug"], t["sites"][1]

    context, tab = new_tab(chromium, live_server)
    try:
        page = tab.page
        expect = sign_in(page, owner.email, PASSWORD)
        page.goto(f"/t/{slug}/sites/{site_b}")
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Site 1 {slug}")
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads
        page.get_by_role("button", name=f"Assign {member.email} to Site 1 {slug}").click()
        expect(page.get_by_role("button", name=f"Unassign {member.email} from Site 1 {slug}")).to_be_visible()
        expect(page.locator(f'#site-members tr[data-email="{member.email}"]')).to_contain_text("assigned by Olive Owner")
        assert page.evaluate("window.__sameDocument") is True, "the assignment reloaded the page"
        tab.assert_no_csp_errors()
    finally:
        context.close()

    context, tab = new_tab(chromium, live_server)
    try:
        page = tab.page
        expect = sign_in(page, member.email, PASSWORD)
        page.goto(f"/t/{slug}/devices/")
        serials = page.locator("#device-list code")
        expect(serials).to_have_text([f"SN-{slug}-1-{j}" for j in range(3)])  # site B only, by name
        page.evaluate("window.__sameDocument = true")

        page.get_by_label("Search").fill("device 1-2")  # live search, debounced
        expect(serials).to_have_text([f"SN-{slug}-1-2"])
        expect(page).to_have_url(re.compile(r"\?q=device\+1-2$"))
        page.get_by_label("Search").fill("")
        expect(serials).to_have_count(3)
        page.get_by_label("Status", exact=True).select_option("error")
        expect(page.locator("#device-list")).to_contain_text("No devices match")
        expect(page).to_have_url(re.compile(r"\?status=error$"))
        assert page.evaluate("window.__sameDocument") is True, "filtering reloaded the page"

        page.go_back()  # the history entry before the status filter: the whole list again
        expect(serials).to_have_count(3)
        expect(page.get_by_label("Status", exact=True)).to_have_value("")  # the form follows the history
        page.reload()  # the URL alone restores the state, form included
        page.get_by_label("Status", exact=True).select_option("online")
        page.get_by_label("Search").fill(f"sn-{slug}-1-0")
        expect(serials).to_have_text([f"SN-{slug}-1-0"])
        page.reload()
        expect(page.get_by_label("Search")).to_have_value(f"sn-{slug}-1-0")
        expect(page.get_by_label("Status", exact=True)).to_have_value("online")
        expect(serials).to_have_text([f"SN-{slug}-1-0"])
        # Site A stays invisible, whatever the URL asks for.
        page.goto(f"/t/{slug}/devices/?site={t['sites'][0]}")
        expect(page.locator("#device-list")).to_contain_text("No devices match")
        tab.assert_no_csp_errors()
    finally:
        context.close()
