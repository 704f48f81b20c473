"""Passkeys in Chromium, with the DevTools virtual authenticator (CTAP2, internal transport,
resident keys, user verification) standing in for a phone or a laptop's platform
authenticator. The portal is opened as http://localhost:PORT: browsers refuse an IP address as
a relying party id. The edge cases without a browser: tests/test_passkeys.py."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from browser_support import DASHBOARD, open_tab, sign_in
from conftest import PASSWORD
from portal.accounts.models import User
from portal.database.context import user_scope
from portal.extensions import db
from portal.passkeys.models import Authenticator

pytestmark = pytest.mark.browser

AUTHENTICATOR = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                 "hasUserVerification": True, "isUserVerified": True}


@pytest.fixture
def portal(live_server) -> str:
    return live_server.replace("127.0.0.1", "localhost")


def device(tab) -> tuple:
    """A virtual authenticator in this tab: (the DevTools session, its id)."""
    cdp = tab.page.context.new_cdp_session(tab.page)
    cdp.send("WebAuthn.enable")
    found = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    return cdp, found["authenticatorId"]


def credentials(cdp, authenticator_id) -> list[dict]:
    return cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]


def add_passkey(page, expect, name: str):
    page.goto("/account/security")
    page.get_by_label("Passkey name").fill(name)
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text(f"Passkey \u201c{name}\u201d added")).to_be_visible()


def sign_out(page, cdp, authenticator_id):
    """Sign out and stay on /login. The virtual authenticator answers the page's autofill
    request (conditional mediation) at once, as if the person picked the passkey from the email
    field's suggestions; with presence simulation off meanwhile, that request stays pending."""
    presence(cdp, authenticator_id, False)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/login"))
    page.locator("form[data-autofill-state=waiting]").wait_for(state="attached")
    presence(cdp, authenticator_id, True)


def presence(cdp, authenticator_id, on: bool):
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", {"authenticatorId": authenticator_id, "enabled": on})


def names_of(app, user_id) -> list[str]:
    with app.app_context(), user_scope(db.session, user_id):  # the person's own rows (RLS)
        return db.session.scalars(sa.select(Authenticator.friendly_name).where(Authenticator.user_id == user_id)
                                  .order_by(Authenticator.created_at)).all()


def test_register_sign_in_with_the_passkey_alone_a_second_device_and_removal(chromium, portal, app, factory):
    person = factory.user(name="Robin Passkey")
    factory.tenant(members={"member": person}, sites=0)
    with open_tab(chromium, portal) as laptop, open_tab(chromium, portal) as phone:
        page = laptop.page
        cdp, laptop_id = device(laptop)
        expect = sign_in(page, person.email, PASSWORD)
        add_passkey(page, expect, "Work laptop")
        row = page.get_by_role("row", name=re.compile("Work laptop"))
        expect(row).to_contain_text("This device only")  # the virtual authenticator does not sync
        expect(row).to_contain_text("never")
        [held] = credentials(cdp, laptop_id)
        assert held["isResidentCredential"] and held["rpId"] == "localhost"

        # Signed out, the passkey alone signs in, from the email field's suggestions (autofill)...
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(DASHBOARD)
        # ... or with the button (by keyboard): no email, no password, no code.
        sign_out(page, cdp, laptop_id)
        page.get_by_role("button", name="Sign in with a passkey").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(DASHBOARD)
        page.goto("/account/security")
        expect(page.get_by_role("row", name=re.compile("Work laptop"))).not_to_contain_text("never")

        # A second device of the same person.
        phone_cdp, phone_id = device(phone)
        expect = sign_in(phone.page, person.email, PASSWORD)
        add_passkey(phone.page, expect, "Phone")
        assert names_of(app, person.id) == ["Work laptop", "Phone"]
        assert len(credentials(phone_cdp, phone_id)) == 1

        # From the phone, the laptop's passkey is removed (a confirmation dialog first).
        phone.page.get_by_role("row", name=re.compile("Work laptop")).get_by_role("button", name="Remove…").click()
        dialog = phone.page.get_by_role("dialog", name=re.compile("Remove the passkey"))
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name="Remove the passkey").click()
        expect(phone.page.get_by_text("Passkey \u201cWork laptop\u201d removed")).to_be_visible()
        assert names_of(app, person.id) == ["Phone"]

        # The laptop still holds it, and the portal no longer accepts it.
        sign_out(page, cdp, laptop_id)
        page.get_by_role("button", name="Sign in with a passkey").click()
        expect(page.get_by_text("This passkey is not registered here")).to_be_visible()
        assert "/login" in page.url
        laptop.assert_no_csp_errors()
        phone.assert_no_csp_errors()


def test_second_factor_wrong_origin_and_replay(chromium, portal, app, factory):
    import pyotp
    from portal.security import mfa
    person = factory.user(name="Sam Second")
    factory.tenant(members={"member": person}, sites=0)
    with open_tab(chromium, portal) as tab:
        page = tab.page
        cdp, authenticator_id = device(tab)
        expect = sign_in(page, person.email, PASSWORD)
        add_passkey(page, expect, "Laptop")
        with app.test_request_context(), user_scope(db.session, person.id):  # as the person (RLS)
            mfa.enable(db.session.get(User, person.id), pyotp.random_base32())
            db.session.commit()
        sign_out(page, cdp, authenticator_id)

        # The password (the autofill's offer ignored), then the passkey instead of the app's code.
        presence(cdp, authenticator_id, False)
        page.get_by_label("Email").fill(person.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(re.compile(r"/login/verify"))
        presence(cdp, authenticator_id, True)
        page.get_by_role("button", name="Use a passkey").click()
        page.wait_for_url(DASHBOARD)

        # A replayed assertion: the answer the browser posted, posted again later.
        sign_out(page, cdp, authenticator_id)
        with page.expect_request(lambda r: r.url.endswith("/login/passkey") and r.method == "POST") as posted:
            page.get_by_role("button", name="Sign in with a passkey").click()
        page.wait_for_url(DASHBOARD)
        answer = dict(re.findall(r"([^=&]+)=([^&]*)", posted.value.post_data))["credential"]
        sign_out(page, cdp, authenticator_id)
        # From here every refusal comes back to /login, whose autofill must not answer again.
        presence(cdp, authenticator_id, False)
        page.evaluate("""(answer) => {
            const form = document.querySelector('form[data-passkey="signin"]');
            form.querySelector('input[name="credential"]').value = decodeURIComponent(answer.replace(/\\+/g, ' '));
            form.dataset.passkeyReady = 'true';
            form.requestSubmit();
        }""", answer)
        expect(page.get_by_text("expired or was already used")).to_be_visible()
        assert "/login" in page.url

        # An origin the portal does not accept (as if the page were served elsewhere).
        app.config["WEBAUTHN_ORIGINS"] = "https://portal.example.com"
        try:
            page.locator("form[data-autofill-state=waiting]").wait_for(state="attached")
            presence(cdp, authenticator_id, True)
            with page.expect_request(lambda r: r.url.endswith("/login/passkey") and r.method == "POST"):
                page.get_by_role("button", name="Sign in with a passkey").click()
            presence(cdp, authenticator_id, False)
            expect(page.get_by_text("That passkey was not accepted")).to_be_visible()
        finally:
            app.config["WEBAUTHN_ORIGINS"] = ""
        assert "/login" in page.url
        tab.assert_no_csp_errors()


def test_clear_errors_when_passkeys_cannot_work(chromium, live_server, portal):
    """No WebAuthn in the browser, a refused (or cancelled) request, and an IP address the browser
    will not use a passkey at: each is said in the form's alert instead of failing silently."""
    from playwright.sync_api import expect

    def alert(page):
        return page.locator("form[data-passkey] [role=alert]")
    with open_tab(chromium, portal) as tab:  # a browser without WebAuthn
        tab.page.add_init_script("delete window.PublicKeyCredential;")
        tab.page.goto("/login")
        tab.page.get_by_role("button", name="Sign in with a passkey").click()
        expect(alert(tab.page)).to_contain_text("This browser does not support passkeys")
    with open_tab(chromium, portal) as tab:  # the person does not unlock the passkey
        cdp = tab.page.context.new_cdp_session(tab.page)
        cdp.send("WebAuthn.enable")
        cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {**AUTHENTICATOR, "isUserVerified": False}})
        tab.page.goto("/login")
        tab.page.get_by_role("button", name="Sign in with a passkey").click()
        expect(alert(tab.page)).to_contain_text("cancelled or timed out")
        tab.assert_no_csp_errors()
    # At http://127.0.0.1:PORT the browser will not use a passkey for the relying party `localhost`.
    with open_tab(chromium, live_server) as tab:
        device(tab)
        tab.page.goto("/login")
        tab.page.get_by_role("button", name="Sign in with a passkey").click()
        expect(alert(tab.page)).to_contain_text("Open the portal at localhost")
