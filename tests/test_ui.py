"""The interface helpers: toasts in HX-Trigger, relative times, browser names."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from flask import Response

from portal.ui import ago, browser_name, toast, trigger


def test_toasts_and_events_share_one_hx_trigger_header():
    response = Response("")
    toast(response, "Saved.")
    trigger(response, "device-changed")
    toast(response, "Nope.", "error")
    events = json.loads(response.headers["HX-Trigger"])
    assert events["device-changed"] is None
    assert events["toast"]["items"] == [{"message": "Saved.", "level": "success"},
                                        {"message": "Nope.", "level": "error"}]


def test_relative_times():
    now = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    assert ago(now - timedelta(seconds=5), now) == "just now"
    assert ago(now - timedelta(minutes=2), now) == "2 min ago"
    assert ago(now - timedelta(hours=1, minutes=5), now) == "1 hour ago"
    assert ago(now - timedelta(days=3), now) == "3 days ago"
    assert ago(None) == "never"


def test_browser_names_from_user_agents():
    chrome = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
    safari = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
    assert browser_name(chrome) == "Chrome 131 on Linux"
    assert browser_name(safari) == "Mobile Safari 17 on iOS"
    assert browser_name(None) == browser_name("") == "Unknown browser"
    assert browser_name("x" * 600)  # anything at all gives words, never an error
