"""Tasks in Chromium: an owner creates a task from a site's page (the form prefilled with the
site), finds it on the board and moves it to another column by changing its status (htmx, no
reload); the page stays within 390 px and raises no CSP error."""
from __future__ import annotations

import re

import pytest
from browser_support import Tab, sign_in
from conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_create_a_task_then_move_it_on_the_board(tab: Tab, factory):
    owner = factory.user(name="Tess Owner")
    t = factory.tenant(members={"owner": owner}, sites=1, devices=1, slug=f"tasks-browser-{factory._unique()}")
    slug, site = t["slug"], t["sites"][0]
    page = tab.page
    expect = sign_in(page, owner.email, PASSWORD)
    page.goto(f"/t/{slug}/sites/{site}")
    page.get_by_role("link", name="New task").click()
    expect(page.get_by_label("Site")).to_have_value(str(site))
    page.get_by_label("Title").fill("Replace the lobby camera")
    page.get_by_label("Description").fill("Blurry at night, see https://example.com/cam")
    page.get_by_label("Priority").select_option("urgent")
    page.get_by_role("button", name="Create task").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Replace the lobby camera")
    expect(page.get_by_role("link", name="https://example.com/cam")).to_be_visible()

    page.goto(f"/t/{slug}/tasks/board")
    card = page.locator(".task-card", has_text="Replace the lobby camera")
    expect(page.locator('.board-column[data-status="open"] .task-card')).to_have_count(1)
    page.evaluate("window.__sameDocument = true")
    card.get_by_label("Move ‘Replace the lobby camera’ to").select_option("in_progress")
    expect(page.locator('.board-column[data-status="in_progress"] .task-card')).to_have_text(
        [re.compile("Replace the lobby camera")])
    expect(page.locator('.board-column[data-status="open"] .task-card')).to_have_count(0)
    assert page.evaluate("window.__sameDocument") is True, "the move reloaded the page"
    expect(page.locator("#toasts")).to_contain_text("is now in progress")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    tab.assert_no_csp_errors()
