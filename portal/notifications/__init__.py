"""Notifications: per-user messages in the portal's bell and by email (issue 14).

`notify(tenant_id, recipients, kind, params, link)` is the one way areas tell people something;
`Kind` names what. This package wires the events of the sign-in itself (a new browser); the
areas call notify from their services.
"""
from __future__ import annotations

from flask import Flask, g, request
from flask_login import user_logged_in

from .kinds import Kind
from .services import actor_name, notify

__all__ = ["Kind", "actor_name", "init_app", "notify"]


def _signed_in(app, user, **extra) -> None:
    """A sign-in from a browser without this account's device cookie (security.throttle), to an
    account that has signed in before, tells its owner by email (security: cannot be turned off)
    and goes to their security log; never to the bell, where it would bury the work (issue 22)."""
    from user_agents import parse

    from ..security.events import security
    from ..security.throttle import trusted_device
    if user.last_login_at is None or trusted_device(user.email) or g.get("new_browser_told"):
        return
    g.new_browser_told = True
    agent = parse(request.user_agent.string or "")
    browser = f"{agent.browser.family} on {agent.os.family}" if agent.browser.family != "Other" else "an unknown browser"
    security("signin.new_browser", user, browser=browser)
    notify(None, [user.id], Kind.SIGNIN_NEW_BROWSER, {"browser": browser, "ip": request.remote_addr or "?"},
           "/account/sessions")


def init_app(app: Flask) -> None:
    from .views import bp
    app.register_blueprint(bp)
    user_logged_in.connect(_signed_in, app)
