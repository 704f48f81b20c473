"""Passkeys (WebAuthn): registered on the account, used to sign in without a password, as the
second factor after one, and to confirm sensitive changes. Built on portal.security (sessions,
sign-in, security events); its markup is included by the sign-in and account pages."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .views import bp
    app.register_blueprint(bp)
