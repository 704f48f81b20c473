"""Invitations: invite by email, accept by token link."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from ..mail.outbox import failure_hooks
    from .accept import bp as accept_bp
    from .services import delivery_failed
    from .views import bp
    app.register_blueprint(bp)
    app.register_blueprint(accept_bp)
    # An invitation that cannot be delivered is shown to whoever sent it.
    failure_hooks["invitation"] = delivery_failed
