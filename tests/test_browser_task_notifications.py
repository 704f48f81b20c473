"""Issue 14's journey in Chromium, across the tasks and notifications halves: alice (owner of
Acme Corporation) assigns a task at Acme Headquarters to bob (a member who sees that site); bob,
in another browser context, sees his bell count go up on its own poll, opens the notification,
lands on the task and marks it done; alice's bell then says bob completed it.

The bell polls every 30 s (hx-trigger "every 30s"). Rather than wait, each page runs on
Playwright's fake clock and the test moves it on by 30 s: the bell's real trigger fires, with no
test hook in the app and no reload. The sample data is the session's, shared with other tests:
the task has a title of its own and counts are compared with what each bell showed before."""
from __future__ import annotations

import re

import pytest
from browser_support import Tab, open_tab, sign_in
from conftest import SEED_PASSWORD

pytestmark = pytest.mark.browser

ACME = "acme-corp"
POLL = "00:31"  # a little past the bell's 30 s


@pytest.fixture
def second_tab(chromium, live_server):
    """Another browser context (its own cookies): the second person of the journey."""
    with open_tab(chromium, live_server) as t:
        yield t


def unread(page) -> int:
    """The count the bell shows (nothing shown is 0), once htmx has loaded it."""
    from playwright.sync_api import expect
    # The header's first bell is empty and loads at once; its answer no longer triggers on load.
    # (Not page.wait_for_function: its polling evaluates a string, which the CSP refuses.)
    expect(page.locator("#bell-count")).not_to_have_attribute("hx-trigger", re.compile("load"))
    text = page.locator("#bell-count [aria-hidden]").all_text_contents()
    return int(text[0].rstrip("+")) if text else 0


def test_alice_assigns_bob_completes_and_both_bells_follow(tab: Tab, second_tab: Tab, factory):
    title = f"Replace the HQ lobby camera {factory._unique()}"
    alice, bob = tab, second_tab
    for person in (alice, bob):
        person.page.clock.install()  # the real time keeps running; fast_forward jumps the polls

    expect = sign_in(bob.page, "bob@acme.com", SEED_PASSWORD)
    bob.page.goto(f"/t/{ACME}/")
    bob_before = unread(bob.page)

    sign_in(alice.page, "alice@acme.com", SEED_PASSWORD)
    alice.page.goto(f"/t/{ACME}/tasks/new")
    alice_before = unread(alice.page)
    alice.page.get_by_label("Title").fill(title)
    alice.page.get_by_label("Site").select_option(label="Acme Headquarters")
    alice.page.get_by_label("Assignee").select_option(label="Bob Smith")
    alice.page.get_by_role("button", name="Create task").click()
    expect(alice.page.get_by_role("heading", level=1)).to_have_text(title)
    expect(alice.page.locator("dl.facts")).to_contain_text("Bob Smith")

    # Bob's page has not moved: the bell's own 30 s poll brings the new count.
    bob.page.evaluate("window.__sameDocument = true")
    bob.page.clock.fast_forward(POLL)
    expect(bob.page.locator("#bell-count")).to_contain_text(f"({bob_before + 1} unread)")
    assert bob.page.evaluate("window.__sameDocument") is True, "the bell's count came with a reload"
    bob.page.locator("#bell summary").click()
    assigned = bob.page.locator("#bell-menu li.unread").filter(has_text=title)
    expect(assigned).to_have_text(re.compile(f"Alice Johnson assigned you the task “{re.escape(title)}” "
                                             "in Acme Corporation"))
    assigned.get_by_role("link").click()
    expect(bob.page.get_by_role("heading", level=1)).to_have_text(title)
    bob.page.wait_for_load_state()  # htmx (deferred) hears the change once the page has loaded
    bob.page.get_by_label(f"Change the status of ‘{title}’").select_option("done")
    expect(bob.page.locator("#toasts")).to_contain_text(f"‘{title}’ is now done.")
    expect(bob.page.locator("#task-status .badge")).to_have_text("done")

    # Alice is still on the task's page; her bell's next poll says bob completed it.
    alice.page.clock.fast_forward(POLL)
    expect(alice.page.locator("#bell-count")).to_contain_text(f"({alice_before + 1} unread)")
    alice.page.locator("#bell summary").click()
    expect(alice.page.locator("#bell-menu li.unread").filter(has_text=title)).to_have_text(
        re.compile(f"Bob Smith completed “{re.escape(title)}” in Acme Corporation"))

    for person in (alice, bob):
        person.assert_no_csp_errors()
        assert person.page_errors == []
        assert person.console_errors == [], person.console_errors
