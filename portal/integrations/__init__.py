"""Integrations (seed 002): outbound webhooks, pulled JSON sources and inbound signed events.

- `providers.py`: each provider's declared configuration and credential fields (plugins).
- `services.py`: the rules (plan limit under the tenant lock, features, audit), credentials
  sealed with the tenant's data key (portal.keys).
- `delivery.py`: the outbox of webhook deliveries (an `events` subscriber), signing, retries,
  the circuit breaker; `sources.py`: JSON source syncs; `inbound.py`: POST /hooks/<id>.
- `tasks.py`: the worker's jobs; `views.py`: /t/<slug>/integrations; `api.py`: /api/v1/integrations;
  `cli.py`: `flask integrations ...`.
Every outbound request goes through `portal.egress.request` (private destinations refused
unless INTEGRATIONS_ALLOW_PRIVATE).
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .. import events
    from . import api, cli, inbound, views
    from .delivery import on_events
    if on_events not in events.subscribers:
        events.subscribers.append(on_events)
    app.register_blueprint(views.bp)
    app.register_blueprint(inbound.bp)
    api.init_app(app)
    cli.init_app(app)
