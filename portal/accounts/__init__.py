"""Accounts: users, sign-in and sign-out."""
from __future__ import annotations

from uuid import UUID

from flask import Flask

from ..database.context import set_context
from ..extensions import db, login_manager
from .models import User


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    try:
        uid = UUID(user_id)
    except ValueError:
        return None
    user = db.session.get(User, uid)
    if user is None or not user.is_active:
        return None
    # Lets RLS show the user their own memberships (the tenant switcher).
    set_context(db.session, user_id=user.id)
    return user


def init_app(app: Flask) -> None:
    from .views import bp
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
    app.register_blueprint(bp)
