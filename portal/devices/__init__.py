"""Devices of a tenant: /t/<slug>/devices (one URL, page or htmx fragment)."""
from __future__ import annotations

from collections.abc import Callable

from flask import Flask

# Sections other areas add to a device's page (the agents area: credential and tasks), so that
# devices imports none of them. Each is called with (ctx, device) and returns HTML or None.
page_sections: list[Callable] = []
# Controls other areas add to the device list's form for the selected devices (the agents area:
# send a command). Each is called with (ctx) and returns HTML or None.
bulk_actions: list[Callable] = []


def init_app(app: Flask) -> None:
    from .views import bp
    app.register_blueprint(bp)
