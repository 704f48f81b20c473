"""The bell in Chromium: the count loads with the page, the dropdown shows the latest, marking
one read on /notifications (htmx) raises a toast and the bell follows without a reload; the
page reads at 390 px without sideways scrolling and breaks no CSP rule."""
from __future__ import annotations

import pytest
from browser_support import sign_in
from conftest import PASSWORD
from test_notifications import send

pytestmark = pytest.mark.browser


def test_the_bell_counts_shows_the_latest_and_follows_mark_read(app, tab, factory):
    bob = factory.user(name="Bob")
    t = factory.tenant(members={"member": bob}, sites=0)
    for site in ("North", "South"):
        send(app, t["id"], [bob.id], params={"actor": "Ann", "site": site, "tenant": "Acme"})
    page = tab.page
    expect = sign_in(page, bob.email, PASSWORD)
    count = page.locator("#bell-count")
    expect(count).to_contain_text("2")
    page.locator("#bell summary").click()
    expect(page.locator("#bell-menu")).to_contain_text("Ann gave you access to the site South in Acme")

    page.goto("/notifications/")
    page.evaluate("window.__sameDocument = true")
    page.get_by_role("button", name="Mark read").first.click()
    expect(page.locator("#toasts")).to_contain_text("Marked as read")
    expect(count).to_contain_text("1")
    expect(page.get_by_role("button", name="Mark read")).to_have_count(1)
    expect(page.locator(".notifications li.read")).to_have_count(1)  # the row came back read
    assert page.evaluate("window.__sameDocument") is True, "marking read reloaded the page"

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.locator("#bell summary").click()
    expect(page.locator("#bell-menu")).to_contain_text("North")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways at 390 px"
    tab.assert_no_csp_errors()
    assert tab.page_errors == []
