"""Device agents: per-device credentials, heartbeats, tasks and results (issue 15).

Pages under /t/<slug>/devices/<id>/agent (views.py); the agents' own API under
/api/v1/agent (api.py, bearer device secrets); the expiry job in tasks.py."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from ..devices import bulk_actions, page_sections
    from .api import bp as api_bp
    from .views import bp, bulk_action, device_section
    app.register_blueprint(bp)
    app.register_blueprint(api_bp)
    if device_section not in page_sections:
        page_sections.append(device_section)
    if bulk_action not in bulk_actions:
        bulk_actions.append(bulk_action)
