"""Times in Chromium (issue 22): the browser's zone is kept once for an account without one, and
a <time> element's title is the absolute time in the zone the person chose, not the browser's."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from browser_support import new_tab, sign_in
from conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_time_titles_follow_the_chosen_zone(chromium, live_server, factory):
    user = factory.user(name="Tia Zone")
    tab = new_tab(chromium, live_server, timezone_id="America/New_York", locale="en-US")
    context = tab.page.context
    try:
        page = tab.page
        # No zone yet: the first page after signing in sends the browser's.
        with page.expect_response(lambda r: r.url.endswith("/account/timezone") and r.status == 204):
            expect = sign_in(page, user.email, PASSWORD)
        page.goto("/account/")
        expect(page.get_by_role("combobox", name="Time zone")).to_have_value("America/New_York")

        page.get_by_role("combobox", name="Time zone").fill("Asia/Tokyo")
        page.get_by_role("button", name="Save time zone").click()
        expect(page.locator(".flash")).to_contain_text("Times are now shown in Asia/Tokyo.")
        page.goto("/account/sessions")  # this browser's session: signed in just now
        first = page.locator("time[data-relative]").first
        expect(first).to_have_text("just now")
        moment = datetime.fromisoformat(first.get_attribute("datetime").replace("Z", "+00:00"))
        tokyo = moment.astimezone(ZoneInfo("Asia/Tokyo"))
        expect(first).to_have_attribute("title", f"{tokyo:%a}, {tokyo:%b} {tokyo.day}, {tokyo.year}, "
                                                 f"{tokyo:%H:%M} GMT+9")
        tab.assert_no_csp_errors()
        assert not tab.page_errors
    finally:
        context.close()
