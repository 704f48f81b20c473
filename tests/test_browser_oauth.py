"""The consent flow in Chromium: an app sends a signed-out person to /oauth/authorize; they sign
in, come back to the consent page naming the app, the organization and each scope in words, and
press Allow; the browser lands on the app's loopback redirect URI with the code and the state, and
the app (Authlib's client) redeems it with its PKCE verifier for a token that works."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from browser_support import open_tab
from conftest import PASSWORD
from test_oauth_apps import REDIRECT, register, session_for

pytestmark = pytest.mark.browser


def test_sign_in_consent_and_code_exchange(chromium, live_server, factory, app, monkeypatch):
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    admin = factory.user(name="Ada Admin")
    tenant = factory.tenant(members={"admin": admin}, name="Consent Works", slug=f"consent-{factory._unique()}")
    client_id, _ = register(app, tenant["id"], ["devices:view", "sites:view"], name="Acme Field App")
    oauth = session_for(client_id, "devices:view sites:view")
    verifier = generate_token(48)
    url, state = oauth.create_authorization_url(live_server + "/oauth/authorize", code_verifier=verifier)
    with open_tab(chromium, live_server) as tab:
        page = tab.page
        landed = []
        # The app's loopback listener, played by the browser's router: nothing listens on the port.
        page.route(REDIRECT + "*", lambda route: (landed.append(route.request.url),
                                                 route.fulfill(body="Signed in; you can close this tab.")))
        page.goto(url)
        page.get_by_label("Email").fill(admin.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        from playwright.sync_api import expect
        expect(page.get_by_role("heading", name="Allow Acme Field App to act for you in Consent Works?")).to_be_visible()
        expect(page.locator(".scopes")).to_contain_text("See devices and export them")
        expect(page.locator(".scopes")).to_contain_text("See sites")
        page.get_by_role("button", name="Allow").click()
        expect(page.get_by_text("Signed in; you can close this tab.")).to_be_visible()
        tab.assert_no_csp_errors()  # the form's redirect to the app is allowed by the page's form-action
        query = parse_qs(urlsplit(landed[0]).query)
        assert query["state"] == [state]
        token = oauth.fetch_token(live_server + "/oauth/token", code=query["code"][0], code_verifier=verifier)
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        listed = requests.get(live_server + "/api/v1/devices", headers=bearer)
        assert listed.status_code == 200 and len(listed.json()["items"]) == 2

        # The account's Connected apps, on a phone: the app, its scopes in words; revoked behind a dialog.
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto("/account/connected-apps")
        expect(page.get_by_role("row", name="Acme Field App")).to_contain_text("See devices and export them")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways at 390 px"
        page.get_by_role("button", name="Revoke…").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("its tokens stop working")
        dialog.get_by_role("button", name="Revoke Acme Field App").click()
        expect(page.get_by_text("No connected apps")).to_be_visible()
        assert requests.get(live_server + "/api/v1/devices", headers=bearer).status_code == 401
        tab.assert_no_csp_errors()
