"""The main actions by keyboard alone (Tab, Shift+Tab, Enter, Space, arrows, Escape), in Chromium
at 1280 px: sign in, switch organization through the menu, open a device, change its status and
decommission it through the confirmation dialog, invite a member. Every stop shows a focus ring."""
from __future__ import annotations

import re

import pytest
from browser_support import DASHBOARD, RECORD_CSP_VIOLATIONS, TIMEOUT_MS, Tab
from conftest import PASSWORD

pytestmark = pytest.mark.browser

FOCUSED = """() => { const e = document.activeElement; const s = e && getComputedStyle(e);
  return e ? {tag: e.tagName, text: (e.innerText || e.value || e.getAttribute('aria-label') || '').trim(),
              label: e.labels && e.labels[0] ? e.labels[0].innerText.trim() : (e.getAttribute('aria-label') || ''),
              visible: e.matches(':focus-visible') && (s.outlineStyle !== 'none' || s.boxShadow !== 'none')} : null; }"""


def tab_to(page, wanted: re.Pattern, key: str = "Tab", limit: int = 80, tag: str | None = None) -> dict:
    """Press Tab (or Shift+Tab) until the focused element's text or label matches `wanted`;
    every element passed on the way must show its focus."""
    seen = []
    for _ in range(limit):
        page.keyboard.press(key)
        focused = page.evaluate(FOCUSED)
        if focused is None or focused["tag"] == "BODY":
            continue
        assert focused["visible"], f"no visible focus ring on {focused}"
        seen.append(focused["text"][:30] or focused["label"])
        if (wanted.search(focused["text"]) or wanted.search(focused["label"])) and tag in (None, focused["tag"]):
            return focused
    raise AssertionError(f"{wanted.pattern!r} not reached by {key}; passed {seen}")


def test_main_actions_by_keyboard_only(chromium, live_server, factory):
    from playwright.sync_api import expect

    owner = factory.user(name="Kim Keys")
    first = factory.tenant(members={"owner": owner}, sites=1, devices=1, name="Alpha Keys")
    second = factory.tenant(members={"owner": owner}, sites=1, devices=2, name="Beta Keys")
    context = chromium.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    tab = Tab(context.new_page())
    page = tab.page
    try:
        # Sign in.
        page.goto("/login")
        tab_to(page, re.compile("^Email"))
        page.keyboard.type(owner.email)
        tab_to(page, re.compile("^Password"))
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        expect(page).to_have_url(DASHBOARD)
        here = DASHBOARD.search(page.url).group(1)
        other = {first["slug"]: second, second["slug"]: first}[here]

        # Switch organization through the menu: Enter opens it, arrows move, Escape closes it.
        # The menu's button arrives by htmx after the page: on a loaded machine the walk would
        # otherwise pass its place before it is there.
        expect(page.locator("#tenant-switcher .switcher-toggle")).to_be_visible()
        tab_to(page, re.compile(r"\bKeys\b"), tag="BUTTON")  # not the account link ("Kim Keys")
        page.keyboard.press("Enter")
        expect(page.locator("#switcher-list")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.locator("#switcher-list")).to_be_hidden()
        page.keyboard.press("ArrowDown")  # on the menu's button: opens it at the first entry
        expect(page.locator("#switcher-list")).to_be_visible()
        names = []
        for _ in range(2):
            names.append(page.evaluate(FOCUSED)["text"])
            page.keyboard.press("ArrowDown")
        assert page.evaluate(FOCUSED)["text"] == names[0]  # wraps around
        page.keyboard.press("End")
        page.keyboard.press("Home")
        target = other["slug"]
        while not page.evaluate(FOCUSED)["text"].startswith("Alpha Keys" if target == first["slug"] else "Beta Keys"):
            page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(rf"/t/{target}/$"))

        # Open a device from the list.
        tab_to(page, re.compile("^Devices$"))
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", level=1)).to_have_text("Devices")
        tab_to(page, re.compile(r"^Device 0-0 "))
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"/devices/[0-9a-f-]{36}$"))

        # Change its status from the keyboard: the toast and the history say so.
        tab_to(page, re.compile("^Change status of"))
        page.keyboard.press("ArrowDown")
        expect(page.locator("#toasts .toast")).to_contain_text("is now")
        expect(page.locator("#device-history")).to_contain_text("changed status from online to")

        # Decommission through the confirmation dialog: Space opens it on "Keep device", Escape
        # closes it, Enter reopens it, Tab reaches the destructive button.
        tab_to(page, re.compile("^Decommission…$"))
        page.keyboard.press("Space")
        dialog = page.locator("dialog#confirm-decommission")
        expect(dialog).to_be_visible()
        assert page.evaluate(FOCUSED)["text"] == "Keep device"
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        assert page.evaluate(FOCUSED)["text"] == "Decommission…"  # focus returns to the trigger
        page.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        tab_to(page, re.compile("^Decommission Device"), limit=3)
        page.keyboard.press("Enter")
        expect(page.locator(".flash")).to_contain_text("Decommissioned")

        # Invite a member.
        tab_to(page, re.compile("^Invitations$"), key="Shift+Tab")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", level=1)).to_have_text("Invitations")
        tab_to(page, re.compile("^Email"))
        page.keyboard.type("keyboard.invitee@example.com")
        tab_to(page, re.compile("^Send invitations$"))
        page.keyboard.press("Enter")
        expect(page.locator(".flash")).to_contain_text("keyboard.invitee@example.com")
        expect(page.locator('tr[data-email="keyboard.invitee@example.com"]')).to_be_visible()
        assert not [m for m in tab.console_errors if "htmx" in m.lower()], tab.console_errors
        tab.assert_no_csp_errors()
    finally:
        context.close()
