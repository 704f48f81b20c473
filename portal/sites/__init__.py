"""Sites of a tenant: /t/<slug>/sites, and who is assigned to which site."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .views import bp
    app.register_blueprint(bp)
