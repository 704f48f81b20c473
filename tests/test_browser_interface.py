"""The interface's behaviour in Chromium: the sidebar's drawer at 390 px, a <dialog> confirmation,
a toast and the refreshed history after an inline status change, the device-list pager."""
from __future__ import annotations

import re

import pytest

from browser_support import RECORD_CSP_VIOLATIONS, TIMEOUT_MS, Tab, sign_in
from conftest import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def owner_tab(chromium, live_server, factory):
    owner = factory.user(name="Iris Owner")
    t = factory.tenant(members={"owner": owner}, sites=1, devices=3, slug=f"ui-{factory._unique()}")
    context = chromium.new_context(base_url=live_server, viewport={"width": 390, "height": 844})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    tab = Tab(context.new_page())
    sign_in(tab.page, owner.email, PASSWORD)
    try:
        yield tab, t
    finally:
        context.close()


def test_phone_header_menu_dialog_toast_and_history(owner_tab):
    tab, t = owner_tab
    page = tab.page
    from playwright.sync_api import expect

    # At 390 px the sidebar folds into a drawer behind the menu button.
    devices_tab = page.locator("nav.side-nav").get_by_role("link", name="Devices")
    expect(devices_tab).to_be_hidden()
    menu = page.get_by_role("button", name="Menu")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    devices_tab.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Devices")

    # A device's status changes inline: a toast says so and the history shows it, no reload.
    page.goto(f"/t/{t['slug']}/devices/{t['devices'][0]}")
    page.evaluate("window.__sameDocument = true")
    page.get_by_label(re.compile("Change status of")).select_option("maintenance")
    expect(page.locator("#toasts .toast")).to_contain_text("is now in maintenance")
    expect(page.locator("#device-history")).to_contain_text("changed status from online to maintenance")
    assert page.evaluate("window.__sameDocument") is True

    # Decommission asks first, in a modal dialog; "Keep device" leaves everything as it was.
    page.get_by_role("button", name="Decommission…").click()
    dialog = page.locator("dialog#confirm-decommission")
    expect(dialog).to_be_visible()
    assert page.evaluate("document.querySelector('dialog#confirm-decommission').open") is True
    dialog.get_by_role("button", name="Keep device").click()
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Decommission…").click()
    dialog.get_by_role("button", name=re.compile("^Decommission ")).click()
    expect(page.locator(".flash")).to_contain_text("Decommissioned")
    expect(page.locator("#device-status .badge")).to_have_text("decommissioned")
    assert not [m for m in tab.console_errors if "htmx" in m.lower()], tab.console_errors
    tab.assert_no_csp_errors()


def test_device_list_count_arrives_after_the_rows(owner_tab):
    tab, t = owner_tab
    page = tab.page
    from playwright.sync_api import expect

    page.goto(f"/t/{t['slug']}/devices/")
    expect(page.locator("#device-count")).to_have_text("1–3 of 3")
    page.get_by_label("Status", exact=True).select_option("online")  # the filter form updates the list live
    expect(page).to_have_url(re.compile(r"status=online"))
    expect(page.locator("#device-count")).to_have_text("1–3 of 3")
    assert not [m for m in tab.console_errors if "htmx" in m.lower()], tab.console_errors
    tab.assert_no_csp_errors()
