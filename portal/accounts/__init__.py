"""Accounts: users, sign-in and sign-out."""
from __future__ import annotations

from flask import Flask

from ..extensions import login_manager


def init_app(app: Flask) -> None:
    from ..profile.views import bp as profile_bp
    from .reset import bp as reset_bp
    from .views import bp
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    app.register_blueprint(bp)
    app.register_blueprint(reset_bp)
    app.register_blueprint(profile_bp)
