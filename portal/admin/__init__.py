"""The system console: /admin/... for system admins only (404 for everyone else)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .views import bp
    app.register_blueprint(bp)
