"""/t/<slug>/roles: a tenant's roles, system and custom, and the editor for custom roles."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .views import bp
    app.register_blueprint(bp)
