"""Account security: server-side sessions, throttling, two-factor, completing a sign-in,
password reset and email verification. Built on portal.accounts (who someone is); the pages
that use it are portal.signin, portal.profile and portal.sso."""
from __future__ import annotations

from flask import Flask, g

from ..extensions import login_manager


def init_app(app: Flask) -> None:
    from ..tenancy import entry_checks
    from . import services, sessions, tenant_policy, throttle, tokens
    # Flask-Login's user is the one of a valid server-side session record; loading it also sets
    # app.user_id, which lets RLS show the user their own memberships (the switcher).
    login_manager.user_loader(sessions.load)
    # Sessions are server-side records (revocable, timed out); addresses change on mobile networks.
    login_manager.session_protection = None
    # A tenant's security policy holds on every request that enters the tenant.
    if tenant_policy.enforce not in entry_checks:
        entry_checks.append(tenant_policy.enforce)
    # What a suspended or deleted account loses at once (accounts.lifecycle.end_access).
    from ..accounts import lifecycle
    lifecycle.register_ender("sessions", sessions.end_all)
    lifecycle.register_ender("account_links", tokens.end_all)
    lifecycle.register_scrubber("security", services.scrub)

    @app.after_request
    def _remember_device(response):
        # A browser that signed in to an account is exempt from that account's lockout.
        if g.get("remember_device") and response.status_code < 400:
            throttle.remember_device(response, g.remember_device)
        return response
