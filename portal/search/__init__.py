"""The command palette's search: /t/<slug>/search?q=... finds pages, sites, devices, tasks and
members by name (or serial number) through the same visibility rules as their pages; the
palette (templates/search/_palette.html, static/palette.js) shows the answer."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .pages import pages
    from .views import bp
    app.register_blueprint(bp)
    app.jinja_env.globals["palette_pages"] = pages  # outside a tenant the palette lists these, filtered in the page
