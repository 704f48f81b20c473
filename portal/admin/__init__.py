"""The system console: /admin/... for system admins only (404 for everyone else)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .views import bp
    from . import jobs  # noqa: F401 (its routes join the console's blueprint)
    app.register_blueprint(bp)
