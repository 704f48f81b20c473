"""Members of a tenant: roles, suspension, removal, ownership transfer; the page (views.py) and
/api/v1/roles, /api/v1/members (api.py)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import api
    from .views import bp
    app.register_blueprint(bp)
    api.init_app(app)
