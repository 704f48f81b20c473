"""Account security: server-side sessions, throttling, two-factor, password reset,
email verification and the /account profile."""
from __future__ import annotations

from flask import Flask, g


def init_app(app: Flask) -> None:
    from ..tenancy import entry_checks
    from . import tenant_policy, throttle

    if tenant_policy.enforce not in entry_checks:
        entry_checks.append(tenant_policy.enforce)

    @app.after_request
    def _remember_device(response):
        # A browser that signed in to an account is exempt from that account's lockout.
        if g.get("remember_device") and response.status_code < 400:
            throttle.remember_device(response, g.remember_device)
        return response
