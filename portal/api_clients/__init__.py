"""/t/<slug>/api-clients: the people's side of API clients (api:manage): create a client,
see its secret once, rotate, disable or enable, delete. The machinery is portal/api."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .views import bp
    app.register_blueprint(bp)
