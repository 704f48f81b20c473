"""Times as people read them (issue 22): one `when` filter renders <time datetime title> with
relative words, and the account's time zone decides the absolute time in the title."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from html import unescape

import pytest
import sqlalchemy as sa

from conftest import csrf_token, login
from portal.accounts.models import User
from portal.extensions import db
from portal.ui import absolute, relative, when

UTC = timezone.utc
NOW = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)  # a Thursday


@pytest.mark.parametrize("delta, words", [
    (timedelta(seconds=5), "just now"),
    (timedelta(minutes=5), "5 min ago"),
    (timedelta(minutes=1), "1 min ago"),
    (timedelta(hours=3, minutes=20), "3 hours ago"),
    (timedelta(hours=1), "1 hour ago"),
    (timedelta(hours=30), "yesterday"),
    (timedelta(days=3), "3 days ago"),
    (timedelta(days=40), "Jan 24"),
    (timedelta(days=400), "Jan 29, 2025"),
    (-timedelta(minutes=10), "in 10 min"),
    (-timedelta(hours=30), "tomorrow"),
    (-timedelta(days=3), "in 3 days"),
])
def test_relative_words(delta, words):
    assert relative(NOW - delta, NOW) == words


def test_yesterday_is_counted_in_the_viewers_calendar():
    late = datetime(2026, 3, 4, 23, 30, tzinfo=UTC)  # 30 hours before 05:30 UTC on the 6th
    now = datetime(2026, 3, 6, 5, 30, tzinfo=UTC)
    assert relative(late, now) == "2 days ago"  # in UTC: the 4th, seen on the 6th
    from zoneinfo import ZoneInfo
    assert relative(late, now, ZoneInfo("Asia/Tokyo")) == "yesterday"  # 08:30 on the 5th, seen on the 6th


def test_the_when_filter_is_a_time_element(app):
    moment = NOW - timedelta(minutes=5)
    with app.test_request_context():
        html = str(when(moment, now=NOW, zone="Europe/Paris"))
        assert html == ('<time datetime="2026-03-05T11:55:00Z" title="Thu, Mar 5, 2026, 12:55 CET" '
                        'data-relative>5 min ago</time>')
        tokyo = str(when(moment, now=NOW, zone="Asia/Tokyo"))
        assert 'title="Thu, Mar 5, 2026, 20:55 JST"' in tokyo
        # No zone chosen (or signed out): UTC on the server; time.js uses the browser's.
        assert 'title="Thu, Mar 5, 2026, 11:55 UTC"' in str(when(moment, now=NOW))
        naive = str(when(moment.replace(tzinfo=None), now=NOW))
        assert 'datetime="2026-03-05T11:55:00Z"' in naive  # naive times are UTC
        assert str(when(None)) == "never" and str(when(None, "not yet")) == "not yet"
        assert str(when(date(2026, 3, 9))) == '<time datetime="2026-03-09">2026-03-09</time>'
    assert absolute(datetime(2026, 7, 1, 9, 5, tzinfo=UTC), __import__("zoneinfo").ZoneInfo("America/New_York")) \
        == "Wed, Jul 1, 2026, 05:05 EDT"


def stored_zone(app, user_id):
    with app.app_context():
        return db.session.scalar(sa.select(User.timezone).where(User.id == user_id))


def post_zone(client, **data):
    return client.post("/account/timezone", data={"csrf_token": csrf_token(client), **data})


@pytest.fixture
def person(app, factory):
    user = factory.user(name="Zed Zone")
    client = app.test_client()
    login(client, user.email)
    return user, client


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "localtime", "../../etc/passwd", "europe/paris",
                                  "x" * 5000, "Europe/Paris\n"])
def test_a_name_that_is_no_time_zone_is_a_422_with_a_message(app, person, name):
    user, client = person
    r = post_zone(client, timezone=name)
    assert r.status_code == 422 or (name.strip() == "Europe/Paris" and r.status_code == 303)
    if r.status_code == 422:
        page = r.get_data(as_text=True)
        assert "is not a time zone: choose one from the list, such as Europe/Paris." in unescape(page)
        assert 'aria-invalid="true"' in page
        assert stored_zone(app, user.id) is None


def test_the_chosen_zone_is_saved_and_used_for_the_titles(app, person):
    user, client = person
    page = client.get("/account/profile").get_data(as_text=True)
    # No zone yet: the page asks time.js to send the browser's.
    assert 'data-detect="/account/timezone"' in page and 'data-timezone=""' in page
    assert re.search(r'<label for="timezone">Time zone</label>', page)
    r = post_zone(client, timezone="Asia/Tokyo", next="/account/profile")
    assert r.status_code == 303 and r.headers["Location"].endswith("/account/profile")
    assert stored_zone(app, user.id) == "Asia/Tokyo"
    page = client.get("/account/profile").get_data(as_text=True)
    assert "Times are now shown in Asia/Tokyo." in page
    assert 'data-timezone="Asia/Tokyo"' in page and "data-detect" not in page
    assert 'value="Asia/Tokyo"' in page
    # The session table's times: relative words, a title in Tokyo time.
    page = client.get("/account/sessions").get_data(as_text=True)
    times = re.findall(r'<time datetime="([^"]+)" title="([^"]+)" data-relative>([^<]+)</time>', page)
    assert times
    for iso, title, words in times:
        local = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
        assert title.endswith(f"{local:%H:%M} JST") and words in ("just now", "1 min ago")
    # Emptied: back to the browser's (time.js detects it again).
    assert post_zone(client, timezone="").status_code == 303
    assert stored_zone(app, user.id) is None
    # An outside `next` is not followed.
    r = post_zone(client, timezone="UTC", next="https://elsewhere.example/")
    assert r.status_code == 303 and r.headers["Location"].endswith("/account/")


def test_the_browsers_zone_is_kept_once_and_never_over_a_choice(app, person):
    user, client = person
    token = csrf_token(client)
    detect = lambda zone: client.post("/account/timezone", data={"detected": "1", "timezone": zone},
                                      headers={"X-CSRFToken": token})
    assert detect("Etc/Unknown").status_code == 204 and stored_zone(app, user.id) is None
    assert detect("Europe/Paris").status_code == 204 and stored_zone(app, user.id) == "Europe/Paris"
    assert detect("America/Chicago").status_code == 204 and stored_zone(app, user.id) == "Europe/Paris"
    # Without the CSRF token nothing is kept.
    r = client.post("/account/timezone", data={"timezone": "UTC"})
    assert r.status_code == 400 and stored_zone(app, user.id) == "Europe/Paris"


def test_the_time_zone_page_and_signed_out(app, person, client):
    _, signed_in = person
    page = signed_in.get("/account/timezone").get_data(as_text=True)
    assert "<h1>Time zone</h1>" in page and '<datalist id="timezone-names">' in page
    assert '<option value="Europe/Paris">' in page
    assert client.get("/account/timezone").status_code in (302, 303)  # sign in first
    assert "data-detect" not in client.get("/login").get_data(as_text=True)
