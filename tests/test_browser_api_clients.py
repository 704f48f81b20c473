"""API clients in Chromium: an admin creates a client at 390 px, copies its secret from the page
shown once, the client gets a token with it, and deleting it goes through the confirmation dialog."""
from __future__ import annotations

import base64

import pytest
from browser_support import sign_in
from conftest import PASSWORD
from test_browser_workspace import new_tab

pytestmark = pytest.mark.browser


def test_admin_creates_uses_and_deletes_an_api_client(chromium, live_server, factory, app):
    admin = factory.user(name="Ada Admin")
    slug = factory.tenant(members={"admin": admin}, sites=2, devices=1, slug=f"ws-api-{factory._unique()}")["slug"]
    context, tab = new_tab(chromium, live_server)
    try:
        page = tab.page
        page.set_viewport_size({"width": 390, "height": 844})
        expect = sign_in(page, admin.email, PASSWORD)
        page.goto(f"/t/{slug}/api-clients/")
        expect(page.get_by_text("No API clients yet")).to_be_visible()
        page.get_by_role("link", name="New client").click()
        page.get_by_label("Name").fill("Inventory sync")
        page.get_by_label("devices:view", exact=False).check()
        # Beyond an admin's own permissions: offered, but not selectable.
        expect(page.locator('input[value="tenant:manage"]')).to_be_disabled()
        page.get_by_role("button", name="Create client").click()
        expect(page.get_by_text("shown only this once")).to_be_visible()
        page.wait_for_load_state()  # the stylesheet too: a layout before it arrives is unstyled
        client_id = page.locator("#client-id").inner_text()
        secret = page.locator("#client-secret").input_value()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways at 390 px"
        token = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials"}, headers={
            "Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()})
        assert token.status_code == 200 and token.get_json()["scope"] == "devices:view"

        page.get_by_role("link", name="Done").click()
        expect(page.locator("table.api-clients")).to_contain_text("Inventory sync")
        page.wait_for_load_state()
        assert secret not in page.content()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways at 390 px"
        page.get_by_role("button", name="Delete…").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("Its tokens stop working at once")
        dialog.get_by_role("button", name="Delete Inventory sync").click()
        expect(page.locator(".flash")).to_contain_text("Deleted Inventory sync")
        tab.assert_no_csp_errors()
    finally:
        context.close()
