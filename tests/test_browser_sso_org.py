"""Home-realm discovery in Chromium: an address of a domain with its organization's provider turns
the sign-in form into "Continue with single sign-on" and the round trip signs the person in; any
other address keeps the password form as it was. No CSP violation."""
from __future__ import annotations

import re
import secrets
import threading

import oidc_provider_mock
import pytest

from browser_support import open_tab, sign_in
from conftest import PASSWORD, make_app
from test_sso_org import Provider, domain, member, organization

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def portal(db_urls, app):
    """The portal served from a thread, its BASE_URL its own address (the provider redirects there)."""
    from werkzeug.serving import make_server
    served = make_app(db_urls)
    server = make_server("127.0.0.1", 0, served, threaded=True)
    served.config["BASE_URL"] = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served
    server.shutdown()
    server.server_close()


def test_an_sso_address_goes_to_its_provider_and_others_keep_the_password(chromium, portal, password_hash):
    from conftest import Factory
    from playwright.sync_api import expect

    make = Factory(portal, password_hash)
    with oidc_provider_mock.run_server_in_thread() as server:
        provider = Provider(f"http://127.0.0.1:{server.server_port}")
        org = organization(portal, make, provider, verified=domain())
        email = f"pat-{secrets.token_hex(3)}@{org['domain']}"
        sub = provider.user(email, groups=["/x"])
        with open_tab(chromium, portal.config["BASE_URL"]) as tab:
            page = tab.page
            page.goto("/login")
            page.get_by_label("Email").fill(email)
            go = page.get_by_role("button", name="Continue with single sign-on")
            expect(go).to_be_visible()
            expect(page.get_by_label("Password")).to_be_hidden()
            expect(page.locator("#sso-discovery-status")).to_contain_text(f"Tenant {org['slug']} signs you in")
            go.click()
            page.wait_for_url(f"{provider.issuer}/oauth2/authorize?*")
            page.locator("input[name=sub]").fill(sub)
            page.get_by_role("button", name="Authorize").click()
            page.wait_for_url(f"**/t/{org['slug']}/")
            assert member(portal, org, email) is not None
            tab.assert_no_csp_errors()

        # The owner of that domain may still choose the password (break-glass when the provider is down).
        with open_tab(chromium, portal.config["BASE_URL"]) as tab:
            page = tab.page
            page.goto("/login")
            page.get_by_label("Email").fill(org["owner"].email)
            expect(page.get_by_role("button", name="Continue with single sign-on")).to_be_visible()
            page.get_by_role("button", name="Use a password instead").click()
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in", exact=True).click()
            expect(page).to_have_url(re.compile(rf"/t/{org['slug']}/"))

        other = make.user()
        make.tenant(members={"owner": other})
        with open_tab(chromium, portal.config["BASE_URL"]) as tab:
            expect = sign_in(tab.page, other.email, PASSWORD)  # the one-page form, unchanged
            expect(tab.page).to_have_url(re.compile(r"/t/"))
            tab.assert_no_csp_errors()
