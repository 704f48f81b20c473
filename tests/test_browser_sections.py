"""Sectioned settings and account in Chromium, as the sample organization's owner: the section nav
by keyboard at 1280 px, an old #anchor link opening its section, and at 390 px every section
short enough to read on a phone, its nav a row whose current link is in view."""
from __future__ import annotations

import re

import pytest

from browser_support import Tab, new_tab, sign_in
from conftest import PASSWORD, SEED_PASSWORD
from portal.extensions import db
from portal.organization.views import SECTIONS as SETTINGS
from portal.profile.views import HISTORY, SECTIONS as ACCOUNT
from portal.security import events
from test_browser_keyboard import tab_to

pytestmark = pytest.mark.browser

SLUG = "acme-corp"  # the sample data's first organization; alice owns it
PHONE_MAX_HEIGHT = 4000
BROWSER = ("Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0.6478.122 Mobile Safari/537.36")


def with_a_full_history(app, factory):
    """Someone whose account pages are as long as they get: more sign-ins, failures and changes
    than the pages list, from a browser with a long user agent."""
    person = factory.user(name="Hana History")
    headers, environ = {"User-Agent": BROWSER}, {"REMOTE_ADDR": "2001:db8:85a3::8a2e:370:7334"}
    from portal.database.context import user_scope
    with app.test_request_context("/login", headers=headers, environ_base=environ), user_scope(db.session, person.id):
        for i in range(HISTORY + 5):
            events.record(person.email, success=i % 3 != 0, reason="ok" if i % 3 else "bad_password",
                          user_id=person.id)
            events.security("notifications.preferences", person, changed=["device_error"])
        db.session.commit()
    return person


def url_of(app, endpoint: str) -> str:
    """The section's address as the app routes it (areas declare their own sections)."""
    args = {"tenant_slug": SLUG} if "tenant_slug" in next(app.url_map.iter_rules(endpoint)).arguments else {}
    return app.url_map.bind("localhost").build(endpoint, args)


def test_sections_by_keyboard_and_on_a_phone(chromium, live_server, app, factory):
    from playwright.sync_api import expect

    tab = new_tab(chromium, live_server, viewport={"width": 1280, "height": 900})
    context = tab.page.context
    page = tab.page
    try:
        sign_in(page, "alice@acme.com", SEED_PASSWORD)

        # The nav by keyboard: Tab to a section's link, Enter opens it, and it is marked current.
        page.goto(f"/t/{SLUG}/settings/")
        expect(page).to_have_url(re.compile(f"/t/{SLUG}/settings/general$"))
        nav = page.get_by_role("navigation", name="Settings")
        expect(nav.get_by_role("link", name="General")).to_have_attribute("aria-current", "page")
        beside = page.evaluate("""() => {const n = document.querySelector('.section-nav').getBoundingClientRect(),
            b = document.querySelector('.sectioned-body').getBoundingClientRect(); return n.right <= b.left;}""")
        assert beside, "at 1280 px the section nav stands beside the section"
        tab_to(page, re.compile("^Security$"), tag="A")
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(f"/t/{SLUG}/settings/security$"))
        expect(page.get_by_role("heading", name="Security policy")).to_be_visible()
        expect(nav.get_by_role("link", name="Security")).to_have_attribute("aria-current", "page")
        expect(nav.get_by_role("link", name="General")).not_to_have_attribute("aria-current", "page")

        # A link from before the sections (an anchor on the old single page) opens its section.
        page.goto("/account/#notifications")
        expect(page).to_have_url(re.compile(r"/account/notifications$"))
        expect(page.get_by_role("navigation", name="Account").get_by_role("link", name="Notifications")
               ).to_have_attribute("aria-current", "page")

        # At 390 px: each section fits a phone, nothing scrolls sideways, the current link shows.
        # The account's sections as someone with a long history sees them.
        page.set_viewport_size({"width": 390, "height": 844})
        heights, problems = {}, []
        for endpoint, label in SETTINGS + ACCOUNT:
            if endpoint == ACCOUNT[0][0]:
                context.clear_cookies()
                sign_in(page, with_a_full_history(app, factory).email, PASSWORD)
            page.goto(url_of(app, endpoint))
            current = page.locator('.section-nav a[aria-current="page"]')
            expect(current).to_have_text(label)
            height, scroll, box = page.evaluate("""() => [document.documentElement.scrollHeight,
                document.documentElement.scrollWidth, document.querySelector('.section-nav [aria-current]')
                .getBoundingClientRect().toJSON()]""")
            heights[endpoint] = height
            if height >= PHONE_MAX_HEIGHT:
                problems.append(f"{endpoint} is {height}px tall at 390 px")
            if scroll > 390:
                problems.append(f"{endpoint} is {scroll}px wide at 390 px")
            if box["left"] < 0 or box["right"] > 390:
                problems.append(f"{endpoint}: the current section's link is out of view ({box})")
        assert problems == [], heights
        tab.assert_no_csp_errors()
        assert tab.page_errors == []
    finally:
        context.close()
