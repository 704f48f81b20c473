"""Devices of a tenant: /t/<slug>/devices (one URL, page or htmx fragment)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .views import bp
    app.register_blueprint(bp)
