"""Invitations: invite by email, accept by token link."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .accept import bp as accept_bp
    from .views import bp
    app.register_blueprint(bp)
    app.register_blueprint(accept_bp)
