"""/t/<slug>/audit: the audit log to read and export (the trail itself is portal/audit, which
every area writes to; this package reads it and imports the areas it describes)."""
from __future__ import annotations


def init_app(app) -> None:
    from .views import bp
    app.register_blueprint(bp)
