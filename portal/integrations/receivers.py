"""`flask integrations sample-receivers`: what the sample integrations (seeds/sample.toml) point
at, on 127.0.0.1, for development: a webhook receiver that verifies every delivery's signature
with the sample secret and prints it, a paged JSON source of point-of-sale records (three pages,
then one new record per sync from the cursor), and, every minute, a signed batch of door events
sent to each sample inbound integration of this portal (BASE_URL)."""
from __future__ import annotations

import json
import threading
import time
import tomllib
import urllib.request
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import click
from flask import Flask
from sqlalchemy import select, text
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from ..config import ROOT
from ..database.context import tenant_scope
from ..extensions import db
from .models import Integration


def _sale(n: int) -> dict:
    return {"id": f"sale-{n}", "amount": round(5 + (n * 7.3) % 90, 2), "currency": "EUR",
            "occurred_at": datetime.now(UTC).isoformat()}


def serve_samples(app: Flask, port: int) -> None:
    spec = tomllib.loads((ROOT / "seeds" / "sample.toml").read_text())["integrations"]
    hook, token = Webhook(spec["signing_secret"]), spec["token"]
    counter = {"n": 30}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, body: dict | None = None):
            data = json.dumps(body or {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                event = hook.verify(body, dict(self.headers))
            except WebhookVerificationError as exc:
                click.echo(f"webhook REFUSED ({exc}): {self.headers.get('webhook-id')}")
                return self._send(401, {"error": str(exc)})
            click.echo(f"webhook verified: {event.get('type')} {self.headers.get('webhook-id')} {json.dumps(event.get('data'))}")
            self._send(200, {"ok": True})

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path != "/pos/sales":
                return self._send(404, {"error": "no such page"})
            if self.headers.get("Authorization") != f"Bearer {token}":
                return self._send(401, {"error": "send the sample token"})
            query = parse_qs(url.query)
            if "cursor" in query:  # incremental: what is new since the cursor
                counter["n"] += 1
                return self._send(200, {"data": [_sale(counter["n"])], "next": None, "cursor": f"c-{counter['n']}"})
            page = int((query.get("page") or ["1"])[0])
            records = [_sale(n) for n in range((page - 1) * 10, min(page * 10, 30))]
            following = f"/pos/sales?page={page + 1}" if page < 3 else None
            self._send(200, {"data": records, "next": following, "cursor": None if following else f"c-{counter['n']}"})

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    click.echo(f"Sample receivers on http://127.0.0.1:{port}: POST /webhook (verifies signatures), "
               f"GET /pos/sales (a paged JSON source); Ctrl-C stops them.")
    threading.Thread(target=_send_inbound, args=(app, hook), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _inbound_urls(app: Flask) -> list[str]:
    with app.app_context():
        urls = []
        for tenant_id in db.session.execute(text("SELECT id FROM tenants")).scalars():
            with tenant_scope(db.session, tenant_id, actor=None):
                urls += [f"{app.config['BASE_URL']}/hooks/{i}" for i in db.session.scalars(
                    select(Integration.id).where(Integration.provider == "inbound",
                                                 Integration.name == "Sample door sensors", Integration.enabled))]
        db.session.rollback()
        return urls


def _send_inbound(app: Flask, hook: Webhook) -> None:
    """Every minute, a signed batch of door events to each sample inbound integration."""
    while True:
        for url in _inbound_urls(app):
            body = json.dumps({"events": [{"type": "door.opened", "properties": {"door": "north"}},
                                          {"type": "door.closed", "properties": {"door": "north"}}]}).encode()
            msg_id, at = f"msg_{uuid.uuid4().hex}", datetime.now(UTC)
            request = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": "application/json", "webhook-id": msg_id,
                "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": hook.sign(msg_id, at, body)})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    click.echo(f"inbound batch to {url}: {answer.status}")
            except OSError as exc:
                click.echo(f"inbound batch to {url}: {exc}")
        time.sleep(60)
