"""Accounts: users, sign-in and sign-out."""
from __future__ import annotations

from flask import Flask

from ..extensions import login_manager
from .models import User


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    from ..security import sessions
    # Also sets app.user_id, which lets RLS show the user their own memberships (the switcher).
    return sessions.load(user_id)


def init_app(app: Flask) -> None:
    from ..profile.views import bp as profile_bp
    from .reset import bp as reset_bp
    from .views import bp
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    # Sessions are server-side records (revocable, timed out); addresses change on mobile networks.
    login_manager.session_protection = None
    app.register_blueprint(bp)
    app.register_blueprint(reset_bp)
    app.register_blueprint(profile_bp)
