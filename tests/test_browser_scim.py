"""The Provisioning section in Chromium: an owner creates a SCIM token at 390 px, copies it from
the page that shows it once, an identity provider uses it, and revoking it goes through the
confirmation dialog; the page passes the page sweep's checks (axe, CSP, no sideways scroll)."""
from __future__ import annotations

import httpx2
import pytest
from browser_support import sign_in
from conftest import PASSWORD
from test_browser_pages import check_page
from test_browser_workspace import new_tab

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def axe():
    from axe_playwright_python.sync_playwright import Axe
    return Axe()


def test_owner_creates_uses_and_revokes_a_scim_token(chromium, live_server, factory, axe):
    owner = factory.user(name="Olive Owner")
    slug = factory.tenant(members={"owner": owner}, sites=1, devices=0)["slug"]
    context, tab = new_tab(chromium, live_server)
    try:
        page = tab.page
        page.set_viewport_size({"width": 390, "height": 844})
        expect = sign_in(page, owner.email, PASSWORD)
        page.goto(f"/t/{slug}/settings/provisioning")
        expect(page.get_by_text("No SCIM tokens yet")).to_be_visible()
        expect(page.locator('.section-nav a[aria-current="page"]')).to_have_text("Provisioning")
        page.get_by_label("Name").fill("Okta")
        page.get_by_label("Name").press("Enter")
        expect(page.get_by_text("shown only this once")).to_be_visible()
        page.reload()  # shown once: a reload shows the list, without it
        expect(page.locator("table.scim-tokens")).to_contain_text("Okta")
        expect(page.get_by_text("shown only this once")).not_to_be_visible()
        assert "pst_" not in page.content()
        # Once more, to check the page that shows a token, at both widths, before and after copying.
        page.get_by_label("Name").fill("Entra ID")
        page.get_by_role("button", name="Create token").click()
        expect(page.get_by_text("shown only this once")).to_be_visible()
        page.wait_for_load_state()
        token = page.locator("#scim-token").input_value()
        problems = check_page(tab, "provisioning", "provisioning", "phone", "owner", axe)
        page.set_viewport_size({"width": 1280, "height": 900})
        problems += check_page(tab, "provisioning", "provisioning", "wide", "owner", axe)
        assert problems == []
        with httpx2.Client(base_url=f"{live_server}/scim/v2/", headers={"Authorization": f"Bearer {token}"}) as idp:
            assert idp.get("Users").status_code == 200
            page.goto(f"/t/{slug}/settings/provisioning")
            row = page.locator("tr", has_text="Entra ID")
            expect(row).not_to_contain_text("never")  # last used just now
            row.get_by_role("button", name="Revoke…").click()
            dialog = page.get_by_role("dialog")
            expect(dialog).to_contain_text("can no longer provision anyone")
            dialog.get_by_role("button", name="Revoke Entra ID").click()
            expect(page.locator(".flash")).to_contain_text("Revoked Entra ID")
            assert idp.get("Users").status_code == 401
        tab.assert_no_csp_errors()
    finally:
        context.close()
