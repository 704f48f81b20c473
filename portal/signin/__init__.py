"""Sign-in pages: /login (and its second-factor step), /logout, / and the forgotten-password
flow under /password. The blueprints and templates keep the names `accounts` and
`accounts_reset` they had when these pages lived in portal.accounts (URLs and url_for unchanged)."""
from __future__ import annotations

from flask import Flask

from ..accounts.lifecycle import AccountUnavailable
from ..extensions import login_manager


def init_app(app: Flask) -> None:
    from .reset import bp as reset_bp
    from .views import bp
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    app.register_blueprint(bp)
    app.register_blueprint(reset_bp)
    app.register_error_handler(AccountUnavailable, _unavailable)


def _unavailable(exc: AccountUnavailable):
    """A way in that reached security.login.complete for an account that may not sign in (a
    passkey, say, whose page did not check first): nothing is kept, and the person is told why."""
    from flask import flash, redirect, session, url_for

    from ..extensions import db
    db.session.rollback()
    session.clear()
    flash(exc.message, "error")
    return redirect(url_for("accounts.login"), 303)
