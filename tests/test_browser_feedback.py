"""Feedback in Chromium (issue 22): a submit button is disabled until the answer; a secret is
shown once after POST-redirect-GET and copied with its button; a refused bulk action is a toast
that keeps the list's filters; the bulk bar appears with a selection; a row's "…" menu works by
keyboard alone; a confirmation dialog opened from a table row is centred and says its verbs."""
from __future__ import annotations

import json
import re

import pytest

from browser_support import Tab, new_tab, open_tab, sign_in
from conftest import PASSWORD, Factory

pytestmark = pytest.mark.browser

FOCUSED = "() => { const e = document.activeElement; return e ? (e.getAttribute('aria-label') || e.innerText || '').trim() : null; }"


@pytest.fixture(scope="module")
def shop(app, password_hash):
    """One organization for the module: an owner, a member, three devices."""
    factory = Factory(app, password_hash)
    owner, member = factory.user(name="Fern Owner"), factory.user(name="Milo Member")
    t = factory.tenant(members={"owner": owner, "member": member}, sites=1, devices=3,
                       slug=f"fb-{factory._unique()}")
    return {"t": t, "owner": owner, "member": member}


@pytest.fixture(scope="module")
def owner_tab(chromium, live_server, shop):
    """The owner, signed in once at 1280 px, allowed to use the clipboard."""
    tab = new_tab(chromium, live_server, viewport={"width": 1280, "height": 800})
    context = tab.page.context
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    sign_in(tab.page, shop["owner"].email, PASSWORD)
    try:
        yield tab
    finally:
        context.close()


def test_sign_in_button_is_disabled_until_the_next_page(chromium, live_server, shop):
    from playwright.sync_api import expect

    with open_tab(chromium, live_server) as tab:
        page = tab.page
        page.goto("/login")
        page.get_by_label("Email").fill(shop["owner"].email)
        page.get_by_label("Password").fill(PASSWORD)
        # Look at the button just after the submit, while the old page waits for its answer, and
        # keep what was seen in sessionStorage (it outlives the navigation to the next page).
        page.evaluate("""() => document.addEventListener('submit', (event) => setTimeout(() => {
            const b = document.querySelector('form button[type=submit]');
            const s = b.nextElementSibling;
            let again = null;  // a second submit meanwhile (a double click) is ignored
            document.addEventListener('submit', (e) => { again = e.defaultPrevented; }, {once: true});
            event.target.requestSubmit();
            sessionStorage.setItem('seen', JSON.stringify({disabled: b.disabled, busy: b.getAttribute('aria-busy'),
                text: b.innerText, status: s && s.getAttribute('role') === 'status' ? s.innerText : null, again}));
        }, 10), {once: true})""")
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page).to_have_url(re.compile(r"/t/"))
        seen = json.loads(page.evaluate("sessionStorage.getItem('seen')"))
        assert seen == {"disabled": True, "busy": "true", "text": "Sign in", "status": "Saving…", "again": True}, seen
        tab.assert_no_csp_errors()


def test_secret_is_shown_once_after_a_redirect_and_copied(owner_tab, shop):
    from playwright.sync_api import expect

    page = owner_tab.page
    slug = shop["t"]["slug"]
    page.goto(f"/t/{slug}/api-clients/new")
    page.get_by_label("Name").fill("Feedback sync")
    page.get_by_label("devices:view", exact=False).check()
    page.get_by_role("button", name="Create client").click()
    expect(page).to_have_url(re.compile(rf"/t/{slug}/api-clients/[0-9a-f-]+/secret$"))  # not /new
    field = page.get_by_label("Client secret")
    secret = field.input_value()
    assert len(secret) > 20 and f"{secret}" not in page.url
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#client-secret-copied")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.reload()
    expect(page.get_by_text("This secret was shown once")).to_be_visible()
    assert secret not in page.content()
    owner_tab.assert_no_csp_errors()


def test_bulk_bar_appears_with_a_selection_and_refusals_keep_the_filters(owner_tab, shop):
    from playwright.sync_api import expect

    page = owner_tab.page
    slug = shop["t"]["slug"]
    page.goto(f"/t/{slug}/devices/?status=online&sort=name")
    filtered = page.url
    bar = page.locator("#bulk-form")
    expect(page.locator("#device-list tbody tr")).to_have_count(3)
    expect(bar).to_be_hidden()
    boxes = page.locator('#device-list input[name="ids"]')
    boxes.first.check()
    expect(bar).to_be_visible()
    expect(bar).to_contain_text("1 selected")

    # No status chosen: a toast, the page and its selection stay.
    bar.get_by_role("button", name="Set status").click()
    expect(page.locator("#toasts .toast")).to_contain_text("Choose a status. Nothing was changed.")
    assert page.url == filtered
    expect(boxes.first).to_be_checked()

    # Nothing selected any more (the box cleared behind the bar's back): a toast, not a 400 page.
    # The bar may hide once it counts again (htmx settling the first answer): press its button from
    # the page's own script, as a stale bar would send it.
    page.evaluate("""() => { document.querySelectorAll('#device-list input[name=ids]').forEach(b => b.checked = false);
                             document.querySelector('#bulk-form button[value=status]').click(); }""")
    expect(page.locator("#toasts .toast").last).to_contain_text("Select at least one device.")
    assert page.url == filtered
    expect(page.get_by_role("heading", level=1)).to_have_text("Devices")

    # A change that works: a toast, the list fetched again with its filters, the bar gone.
    boxes.first.check()
    bar.get_by_label("New status").select_option("maintenance")
    bar.get_by_role("button", name="Set status").click()
    expect(page.locator("#toasts .toast").last).to_contain_text("Set 1 device to maintenance.")
    expect(page.locator("#device-list tbody tr")).to_have_count(2)  # filtered on online
    expect(bar).to_be_hidden()
    assert "status=online" in page.url
    boxes.first.check()
    expect(bar).to_contain_text("1 selected")
    bar.get_by_role("button", name="Clear selection").click()
    expect(bar).to_be_hidden()
    owner_tab.assert_no_csp_errors()


def test_row_menu_by_keyboard_and_a_centred_dialog_with_verbs(owner_tab, shop):
    from playwright.sync_api import expect

    page = owner_tab.page
    page.goto(f"/t/{shop['t']['slug']}/members/")
    email = shop["member"].email
    button = page.get_by_role("button", name=f"Actions for {email}")
    menu = page.get_by_role("menu")
    expect(menu).to_have_count(0)  # closed menus are not shown
    button.focus()
    page.keyboard.press("Enter")
    expect(button).to_have_attribute("aria-expanded", "true")
    items = page.get_by_role("menuitem")
    expect(items.first).to_be_focused()
    labels = [t.strip() for t in items.all_inner_texts()]
    assert labels[0] == "Suspend…" and labels[-1] == "Remove…", labels
    page.keyboard.press("End")
    expect(items.last).to_be_focused()
    page.keyboard.press("ArrowDown")  # wraps
    expect(items.first).to_be_focused()
    page.keyboard.press("Escape")
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_be_focused()

    # ArrowUp opens on the last item: Remove…, which asks in a dialog centred in the window.
    page.keyboard.press("ArrowUp")
    expect(page.get_by_role("menuitem", name="Remove…")).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Remove Milo Member from")
    expect(dialog.get_by_role("button", name="Keep member")).to_be_focused()
    expect(dialog.get_by_role("button", name="Remove member")).to_be_visible()
    box = dialog.bounding_box()
    view = page.viewport_size
    assert abs(box["x"] + box["width"] / 2 - view["width"] / 2) < 4, box
    assert abs(box["y"] + box["height"] / 2 - view["height"] / 2) < 4, box
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()  # back on the row's menu button

    # Tab then Enter on "Remove member": the row goes, in place.
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Remove member")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(f'tr[data-email="{email}"]')).to_have_count(0)
    owner_tab.assert_no_csp_errors()
