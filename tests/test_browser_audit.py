"""The audit log in Chromium: an owner filters it to one device's changes with the live filters
(htmx, no reload, the URL keeps the filter) and exports exactly those as CSV; the page reads at
390 px without sideways scrolling and breaks no CSP rule."""
from __future__ import annotations

import csv
import io
import re

import pytest

from browser_support import RECORD_CSP_VIOLATIONS, TIMEOUT_MS, Tab, sign_in
from conftest import PASSWORD, csrf_token, login

pytestmark = pytest.mark.browser


def test_owner_filters_the_audit_log_to_one_device_and_exports_it(app, chromium, live_server, factory):
    owner = factory.user(name="Olive Owner")
    t = factory.tenant(members={"owner": owner}, sites=2, devices=2, slug=f"audit-browser-{factory._unique()}")
    slug, device, other = t["slug"], t["devices"][0], t["devices"][1]
    client = app.test_client()  # the history: two changes to the device, one to another
    login(client, owner.email)
    token = csrf_token(client)
    assert client.post(f"/t/{slug}/devices/{device}/move", data={"site_id": str(t["sites"][1]),
                                                                 "csrf_token": token}).status_code == 303
    for target, status in ((device, "maintenance"), (other, "error")):
        assert client.post(f"/t/{slug}/devices/{target}/status",
                           data={"status": status, "csrf_token": token}).status_code == 303

    context = chromium.new_context(base_url=live_server, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    tab = Tab(context.new_page())
    try:
        page = tab.page
        expect = sign_in(page, owner.email, PASSWORD)
        page.goto(f"/t/{slug}/")
        page.get_by_role("link", name="Audit log").click()
        entries = page.locator("#audit-list .audit-entry")
        expect(entries).to_have_count(3)
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads

        page.get_by_label("Resource", exact=True).select_option("device")
        page.get_by_label("Resource id").fill(str(device))  # live, debounced
        expect(entries).to_have_count(2)
        expect(entries.nth(0)).to_contain_text(f"changed the status of ‘Device 0-0 {slug}’ from online to maintenance")
        expect(entries.nth(1)).to_contain_text(f"moved ‘Device 0-0 {slug}’ from Site 0 {slug} to Site 1 {slug}")
        expect(page).to_have_url(re.compile(rf"type=device&resource={device}$"))
        assert page.evaluate("window.__sameDocument") is True, "filtering reloaded the page"

        entries.nth(0).locator("summary").click()  # the before/after of the change
        expect(entries.nth(0).locator("table.diff")).to_contain_text("maintenance")

        with page.expect_download() as info:
            page.get_by_role("link", name="CSV").click()
        download = info.value
        assert download.suggested_filename.startswith(f"audit-{slug}-") and download.suggested_filename.endswith(".csv")
        rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
        assert [r["action"] for r in rows] == ["device.status", "device.move"]
        assert {r["resource_id"] for r in rows} == {str(device)}

        page.reload()  # the URL alone restores the filter
        expect(page.get_by_label("Resource id")).to_have_value(str(device))
        expect(entries).to_have_count(2)

        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"/t/{slug}/audit/")
        expect(entries.first).to_contain_text("exported the audit log as csv")  # the export is audited
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways at 390 px"
        page.set_viewport_size({"width": 1280, "height": 800})
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        tab.assert_no_csp_errors()
        assert tab.page_errors == []
    finally:
        context.close()
