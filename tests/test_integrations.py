"""Integrations (issue 23): webhooks delivered by the real worker to a receiver on loopback that
verifies every delivery with the `standardwebhooks` package; retries after 500s and timeouts; the
circuit breaker; replay; a JSON source on loopback with pages and a failure in the middle; inbound
signed events with their refusals; and the signing secret nowhere but on the page that shows it once."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
import time
import uuid
import zipfile
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from click.testing import CliRunner  # noqa: F401 (the app's runner is used)
from standardwebhooks import Webhook

from conftest import csrf_token, login, make_app
from portal.database.context import acting_as, tenant_scope
from portal.extensions import db
from portal.integrations.models import Integration, IntegrationStatus, LogEntry

FAST = {"WEBHOOK_RETRY_SECONDS": 0.05, "WEBHOOK_RETRY_MAX_SECONDS": 0.2, "WEBHOOK_TIMEOUT": 0.5,
        "WEBHOOK_BREAKER_FAILURES": 3, "WEBHOOK_BREAKER_HOURS": 0, "INTEGRATIONS_ALLOW_PRIVATE": True}


class Receiver:
    """An HTTP server on 127.0.0.1: POSTs are recorded and answered from `plan` (a status, or
    "timeout": answer only after the sender has given up); GETs are served from `pages`."""

    def __init__(self):
        self.requests: list[dict] = []
        self.plan: list = []
        self.pages: dict[str, list] = {}   # path -> [(status, body)], the last one repeats
        self.gets: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                action = receiver.plan.pop(0) if receiver.plan else 200
                if action == "timeout":
                    time.sleep(0.8)  # past WEBHOOK_TIMEOUT
                    action = 200
                self._answer(action, b'{"ok": true}')

            def do_GET(self):
                receiver.gets.append({"path": self.path, "headers": dict(self.headers)})
                answers = receiver.pages.get(self.path) or [(404, {"error": "no such page"})]
                status, body = answers.pop(0) if len(answers) > 1 else answers[0]
                self._answer(status, json.dumps(body).encode())

            def _answer(self, status, body):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the sender gave up (a timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def worker_app(db_urls):
    return make_app(db_urls, **FAST)


def run_jobs(worker_app, rounds: int = 1, pause: float = 0.0) -> None:
    """A burst worker, `rounds` times: it runs what is due, then stops (retries scheduled a little
    later are due in a later round)."""
    from portal.jobs.worker import run_async
    for _ in range(rounds):
        burst = threading.Thread(target=lambda: asyncio.run(run_async(worker_app, concurrency=2, wait=False,
                                                                      install_signal_handlers=False)))
        burst.start()
        burst.join(60)
        assert not burst.is_alive(), "the burst worker did not finish"
        time.sleep(pause)


def post(client, path, **data):
    return client.post(path, data={"csrf_token": csrf_token(client), **data})


@pytest.fixture
def org(app, factory, client):
    owner = factory.user(name="Olive Owner")
    t = factory.tenant(members={"owner": owner}, sites=1, devices=2)
    login(client, owner.email)
    return {"t": t, "slug": t["slug"], "client": client, "owner": owner}


def create_webhook(org, url, events=("device.status_changed",)) -> tuple[str, str]:
    """Through the page: the id and the signing secret shown once (POST-redirect-GET)."""
    client = org["client"]
    r = client.post(f"/t/{org['slug']}/integrations/new/webhook",
                    data={"csrf_token": csrf_token(client), "name": "ERP", "url": url, "events": list(events)})
    assert r.status_code == 303, r.get_data(as_text=True)
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    secret = re.search(r'value="(whsec_[^"]+)"', page).group(1)
    integration_id = re.search(r'<code id="integration-id">([0-9a-f-]+)</code>', page).group(1)
    # Shown once: the same page again has no secret.
    assert "whsec_" not in client.get(r.headers["Location"]).get_data(as_text=True)
    return integration_id, secret


def set_status(org, device_index: int, status: str):
    client = org["client"]
    device = org["t"]["devices"][device_index]
    r = post(client, f"/t/{org['slug']}/devices/{device}/status", status=status)
    assert r.status_code in (200, 303), r.status_code
    return device


def entries(app, tenant_id, integration_id) -> list[LogEntry]:
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        rows = list(db.session.scalars(sa.select(LogEntry).where(LogEntry.integration_id == uuid.UUID(str(integration_id)))
                                       .order_by(LogEntry.created_at, LogEntry.id)))
        db.session.expunge_all()
        return rows


def integration(app, tenant_id, integration_id) -> Integration:
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        row = db.session.scalar(sa.select(Integration).where(Integration.id == uuid.UUID(str(integration_id))))
        db.session.expunge_all()
        return row


def verified(receiver, secret) -> list[dict]:
    """Every request the receiver got, verified as a Standard Webhooks library does (raises if not)."""
    hook = Webhook(secret)
    return [hook.verify(r["body"], r["headers"]) for r in receiver.requests]


# --- Webhooks ----------------------------------------------------------------------------------

def test_delivery_is_signed_retried_after_500_and_timeout_and_logged(app, org, receiver, worker_app):
    integration_id, secret = create_webhook(org, receiver.url + "/hook", ("device.status_changed", "task.completed"))
    receiver.plan = [500, "timeout", 200]
    device = set_status(org, 0, "maintenance")
    for _ in range(12):
        run_jobs(worker_app, pause=0.15)
        if len(receiver.requests) >= 3 and entries(app, org["t"]["id"], integration_id)[-1].state == "succeeded":
            break
    bodies = verified(receiver, secret)
    assert len(bodies) == 3
    assert {b["type"] for b in bodies} == {"device.status_changed"}
    assert bodies[0]["data"] == {"device_id": str(device), "site_id": str(org["t"]["sites"][0]),
                                 "from": "online", "to": "maintenance"}
    # One message: the same webhook-id on every attempt, a fresh timestamp and signature each time.
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1
    [entry] = entries(app, org["t"]["id"], integration_id)
    assert (entry.state, entry.attempts) == ("succeeded", 3)
    assert entry.response["status"] == 200
    row = integration(app, org["t"]["id"], integration_id)
    assert row.status == IntegrationStatus.ACTIVE and row.failures_in_row == 0
    page = org["client"].get(f"/t/{org['slug']}/integrations/{integration_id}").get_data(as_text=True)
    assert "3 attempts" in page and "webhook-signature" in page and "HTTP 200" in page
    assert secret not in page


def test_nothing_is_queued_when_the_change_rolls_back(app, org, receiver):
    integration_id, _ = create_webhook(org, receiver.url + "/hook")
    from portal.events import emit
    with app.test_request_context(), tenant_scope(db.session, org["t"]["id"], actor="test:setup"):
        emit(org["t"]["id"], "device.status_changed", {"device_id": uuid.uuid4(), "site_id": None,
                                                        "from": "online", "to": "error"})
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LogEntry)) == 1  # in the transaction
        db.session.rollback()
    assert entries(app, org["t"]["id"], integration_id) == []
    # Events the endpoint did not subscribe to queue nothing either.
    set_status(org, 0, "offline")  # subscribed
    r = post(org["client"], f"/t/{org['slug']}/tasks/new", title="Not subscribed", priority="medium")
    assert r.status_code == 303
    assert [e.event_type for e in entries(app, org["t"]["id"], integration_id)] == ["device.status_changed"]


def test_circuit_breaker_disables_the_endpoint_and_tells_its_owners(app, org, receiver, worker_app):
    integration_id, secret = create_webhook(org, receiver.url + "/hook")
    receiver.plan = [500] * 10
    set_status(org, 0, "error")
    for _ in range(8):
        run_jobs(worker_app, pause=0.15)
        if integration(app, org["t"]["id"], integration_id).status == IntegrationStatus.DISABLED:
            break
    row = integration(app, org["t"]["id"], integration_id)
    assert (row.enabled, row.status) == (False, IntegrationStatus.DISABLED)
    assert "Disabled automatically after 3 failed deliveries" in row.sync_error
    [entry] = entries(app, org["t"]["id"], integration_id)
    assert entry.state == "failed" and entry.attempts == 3 and "circuit breaker" in entry.error
    verified(receiver, secret)
    bell = org["client"].get("/notifications/").get_data(as_text=True)
    assert "The integration ERP in" in bell and "was disabled after 3 failed deliveries" in bell
    audit_page = org["client"].get(f"/t/{org['slug']}/audit/").get_data(as_text=True)
    assert "disabled the integration ‘ERP’ after 3 failed deliveries in a row" in audit_page, re.findall(r"[^>]*integration[^<]*", audit_page)

    # Replay: enable the endpoint again, replay the failed delivery; it arrives with the same id.
    receiver.plan = []
    assert post(org["client"], f"/t/{org['slug']}/integrations/{integration_id}/enable").status_code == 303
    r = post(org["client"], f"/t/{org['slug']}/integrations/{integration_id}/log/{entry.id}/replay")
    assert r.status_code == 303
    run_jobs(worker_app)
    log = entries(app, org["t"]["id"], integration_id)
    assert [e.state for e in log] == ["failed", "succeeded"] and log[1].replay_of == entry.id
    assert receiver.requests[-1]["headers"]["webhook-id"] == "msg_" + entry.id.hex
    assert verified(receiver, secret)[-1]["type"] == "device.status_changed"


def test_test_event_and_ordered_deliveries(app, org, receiver, worker_app):
    integration_id, secret = create_webhook(org, receiver.url + "/hook")
    assert post(org["client"], f"/t/{org['slug']}/integrations/{integration_id}/test").status_code == 303
    for status in ("maintenance", "offline", "online"):
        set_status(org, 1, status)
    # A burst worker stops when the next job waits for its lock: a round per ordered delivery.
    run_jobs(worker_app, rounds=4)
    bodies = verified(receiver, secret)
    # The test event is not ordered with the endpoint's events (it has no lock): it arrives, once.
    assert [b["type"] for b in bodies].count("integration.test") == 1
    # device.status_changed is ordered per endpoint: the receiver sees the changes in order.
    assert [b["data"]["to"] for b in bodies if b["type"] == "device.status_changed"] == ["maintenance", "offline",
                                                                                         "online"]


# --- JSON source ---------------------------------------------------------------------------------

def test_json_source_follows_pages_resumes_after_a_failure_and_logs_it(app, org, receiver, worker_app):
    base = receiver.url
    receiver.pages = {
        "/sales": [(200, {"data": [{"id": "s1", "amount": 10}, {"id": "s2", "amount": 20}], "next": "/sales?page=2"})],
        "/sales?page=2": [(500, {"error": "busy"}),
                          (200, {"data": [{"id": "s3", "amount": 30}], "next": f"{base}/sales?page=3"})],
        "/sales?page=3": [(200, {"data": [{"id": "s4", "amount": 40}], "next": None, "cursor": "c-4"})],
        "/sales?cursor=c-4": [(200, {"data": [{"id": "s5", "amount": 50}], "cursor": "c-5"})],
    }
    client = org["client"]
    r = client.post(f"/t/{org['slug']}/integrations/new/json_source", data={
        "csrf_token": csrf_token(client), "name": "POS", "url": base + "/sales", "event_type": "pos.sale",
        "token": "pos-token-SECRET-123", "records_key": "data", "next_key": "next", "cursor_key": "cursor",
        "cursor_param": "cursor", "id_key": "id", "time_key": "occurred_at", "auth_header": "Authorization",
        "interval_minutes": "60"})
    assert r.status_code == 303
    integration_id = r.headers["Location"].rstrip("/").rsplit("/", 1)[1]

    def sales():
        with app.app_context(), tenant_scope(db.session, org["t"]["id"], actor="test:setup"):
            return sorted(db.session.scalars(sa.text(
                "SELECT source_id FROM analytics_events WHERE tenant_id = :t AND event_type = 'pos.sale'"),
                {"t": org["t"]["id"]}))

    sync = f"/t/{org['slug']}/integrations/{integration_id}/sync"
    assert post(client, sync).status_code == 303
    run_jobs(worker_app)
    assert sales() == ["s1", "s2"]  # page 1 kept; page 2 failed
    row = integration(app, org["t"]["id"], integration_id)
    assert row.status == IntegrationStatus.ERROR and row.sync_status == "failed"
    assert "Page 2 failed: the source answered 500" in row.sync_error
    assert row.sync_cursor == base + "/sales?page=2"
    assert all(g["headers"]["Authorization"] == "Bearer pos-token-SECRET-123" for g in receiver.gets)

    assert post(client, sync).status_code == 303
    run_jobs(worker_app)
    assert sales() == ["s1", "s2", "s3", "s4"]  # resumed at page 2: no duplicates
    row = integration(app, org["t"]["id"], integration_id)
    assert (row.status, row.sync_status, row.sync_error) == (IntegrationStatus.ACTIVE, "succeeded", None)
    assert row.sync_cursor == base + "/sales?cursor=c-4" and row.last_sync_at is not None
    assert post(client, sync).status_code == 303
    run_jobs(worker_app)
    assert sales() == ["s1", "s2", "s3", "s4", "s5"]  # incremental: from the cursor

    runs = entries(app, org["t"]["id"], integration_id)
    assert [(e.state, e.payload["pages"], e.payload["started_at"]) for e in runs] == [
        ("failed", 1, "url"), ("succeeded", 2, "cursor"), ("succeeded", 1, "cursor")]
    page = client.get(f"/t/{org['slug']}/integrations/{integration_id}").get_data(as_text=True)
    assert "Page 2 failed: the source answered 500" in page and "resumed from the cursor" in page
    assert "pos-token-SECRET-123" not in page and "Authorization: [redacted]" in page
    # Write-only credentials: replacing the token never shows the old one.
    r = post(client, f"/t/{org['slug']}/integrations/{integration_id}/credentials", token="new-token-456")
    assert r.status_code == 303
    assert "new-token-456" not in client.get(r.headers["Location"]).get_data(as_text=True)


# --- Inbound -------------------------------------------------------------------------------------

def test_inbound_events_refuse_bad_signatures_old_timestamps_and_replays(app, org):
    client = org["client"]
    r = client.post(f"/t/{org['slug']}/integrations/new/inbound",
                    data={"csrf_token": csrf_token(client), "name": "Door sensors"})
    assert r.status_code == 303
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    secret = re.search(r'value="(whsec_[^"]+)"', page).group(1)
    integration_id = re.search(r'<code id="integration-id">([0-9a-f-]+)</code>', page).group(1)
    hook = Webhook(secret)
    anonymous = app.test_client()

    def send(body: dict, *, msg_id=None, at=None, sign_with=hook):
        raw = json.dumps(body).encode()
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        at = at or datetime.now(timezone.utc)
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
                   "webhook-signature": sign_with.sign(msg_id, at, raw), "Content-Type": "application/json"}
        return anonymous.post(f"/hooks/{integration_id}", data=raw, headers=headers)

    batch = {"events": [{"type": "door.opened", "properties": {"door": "north"}}, {"type": "door.closed"}]}
    ok = send(batch, msg_id="msg_first")
    assert ok.status_code == 202 and ok.get_json() == {"recorded": 2}
    assert send(batch, msg_id="msg_first").status_code == 409                       # a replay
    forged = Webhook("whsec_" + "B" * 43 + "=")
    assert send(batch, sign_with=forged).status_code == 401                         # bad signature
    old = datetime.fromtimestamp(time.time() - 3600, timezone.utc)
    refused = send(batch, at=old)
    assert refused.status_code == 401 and "too old" in refused.get_json()["title"]  # old timestamp
    assert anonymous.post(f"/hooks/{integration_id}", json=batch).status_code == 400  # unsigned
    assert anonymous.post(f"/hooks/{uuid.uuid4()}", json=batch).status_code == 404
    assert send({"events": [{"type": "device.fake"}]}).status_code == 422            # the portal's own types
    with app.app_context(), tenant_scope(db.session, org["t"]["id"], actor="test:setup"):
        got = db.session.execute(sa.text("SELECT event_type, source FROM analytics_events WHERE tenant_id = :t "
                                         "AND source = 'inbound' ORDER BY event_type"), {"t": org["t"]["id"]}).all()
    assert [tuple(r) for r in got] == [("door.closed", "inbound"), ("door.opened", "inbound")]
    page = client.get(f"/t/{org['slug']}/integrations/{integration_id}").get_data(as_text=True)
    assert "Batch received" in page and secret not in page


# --- Secrets, limits, features, CLI, API ---------------------------------------------------------

def test_the_signing_secret_is_nowhere_but_the_page_that_shows_it_once(app, org, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    integration_id, secret = create_webhook(org, receiver.url + "/hook")
    client, slug = org["client"], org["slug"]
    post(client, f"/t/{slug}/integrations/{integration_id}/test")
    pages = [f"/t/{slug}/integrations/", f"/t/{slug}/integrations/{integration_id}",
             f"/t/{slug}/integrations/{integration_id}/edit", f"/t/{slug}/integrations/{integration_id}/secret",
             f"/t/{slug}/audit/", f"/t/{slug}/audit/export.jsonl", f"/t/{slug}/"]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert secret not in response.get_data(as_text=True), url
    assert secret not in caplog.text
    from portal.organization.export import write
    with app.app_context(), tenant_scope(db.session, org["t"]["id"], actor="test:setup"):
        _, _, path = write(uuid.uuid4(), org["t"]["id"])
        db.session.rollback()
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert "integrations.jsonl" in names
        assert all(secret not in zf.read(n).decode() for n in names)
    path.unlink()
    with app.app_context(), tenant_scope(db.session, org["t"]["id"], actor="test:setup"):
        stored = db.session.scalar(sa.select(Integration.credentials).where(
            Integration.id == uuid.UUID(integration_id)))
        audit_rows = db.session.execute(sa.text("SELECT row_to_json(a)::text FROM audit_logs a WHERE tenant_id = :t"),
                                        {"t": org["t"]["id"]}).scalars().all()
    assert secret.encode() not in stored and secret[6:].encode() not in stored  # sealed, not in clear
    assert audit_rows and all(secret not in row for row in audit_rows)


def test_limit_counts_integrations_and_features_gate_providers(app, factory, client):
    owner = factory.user()
    t = factory.tenant(members={"owner": owner}, max_integrations=1, plan="starter")
    login(client, owner.email)
    slug = t["slug"]
    index = client.get(f"/t/{slug}/integrations/").get_data(as_text=True)
    assert "Outbound webhook" in index and "HTTP JSON source" not in index   # starter: webhooks only
    r = post(client, f"/t/{slug}/integrations/new/inbound", name="Not on this plan")
    assert r.status_code == 422 and "plan does not include the provider “Inbound events”" in r.get_data(as_text=True)
    r = post(client, f"/t/{slug}/integrations/new/webhook", name="One", url="http://127.0.0.1:9/x",
             events="task.created")
    assert r.status_code == 303
    r = post(client, f"/t/{slug}/integrations/new/webhook", name="Two", url="http://127.0.0.1:9/y",
             events="task.created")
    assert r.status_code == 422 and "allows 1 integrations and 0 are free" in r.get_data(as_text=True)
    # A feature given to this tenant on top of its plan (the console's checkboxes).
    with app.app_context(), acting_as(db.session, "test:console"):
        db.session.execute(sa.text("UPDATE tenants SET features = ARRAY['inbound_events']::varchar(32)[], "
                                   "max_integrations = 5 WHERE id = :t"), {"t": t["id"]})
        db.session.commit()
    assert post(client, f"/t/{slug}/integrations/new/inbound", name="Doors").status_code == 303
    # Bad input: a clear message, no partial write.
    r = post(client, f"/t/{slug}/integrations/new/webhook", name="Bad", url="ftp://example.com/x",
             events="no.such")
    assert r.status_code == 422


def test_sample_tenants_have_one_integration_of_each_kind(app):
    import tomllib

    from portal.config import ROOT
    from portal.integrations.services import credentials_of
    from portal.tenants.models import Tenant
    sample = tomllib.loads((ROOT / "seeds" / "sample.toml").read_text())
    with app.app_context():
        tenants = db.session.scalars(sa.select(Tenant).where(Tenant.slug.in_([t["slug"] for t in sample["tenants"]])))
        for tenant in tenants:
            with tenant_scope(db.session, tenant.id, actor="test:setup"):
                rows = db.session.scalars(sa.select(Integration).where(Integration.tenant_id == tenant.id)
                                          .order_by(Integration.provider)).all()
                assert sorted(r.provider for r in rows) == ["inbound", "json_source", "webhook"], tenant.slug
                assert all(r.config.get("url", sample["integrations"]["receiver"]).startswith("http://127.0.0.1:8765")
                           for r in rows)
                by_kind = {r.provider: credentials_of(r) for r in rows}
                assert by_kind["webhook"]["signing_secret"] == sample["integrations"]["signing_secret"]
                assert by_kind["json_source"] == {"token": sample["integrations"]["token"]}
        db.session.rollback()


def test_cli_create_webhook_prints_the_id_and_secret_once(app, factory):
    t = factory.tenant(members={"owner": factory.user()})
    result = app.test_cli_runner().invoke(args=["integrations", "create-webhook", "--tenant", t["slug"], "--url",
                                                "http://127.0.0.1:9/hook", "--events",
                                                "device.status_changed task.completed"])
    assert result.exit_code == 0, result.output
    found = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert found["signing_secret"].startswith("whsec_")
    row = integration(app, t["id"], found["id"])
    assert row.config["events"] == ["device.status_changed", "task.completed"] and row.enabled
    bad = app.test_cli_runner().invoke(args=["integrations", "create-webhook", "--tenant", t["slug"], "--url",
                                             "http://127.0.0.1:9/hook", "--events", "nothing.here"])
    assert bad.exit_code != 0 and "Not in the event catalogue" in bad.output


def test_api_creates_lists_and_reads_the_log(app, client, world):
    from test_api import bearer, token_for
    token = token_for(app, client, world["a"]["id"], ["integrations:view", "integrations:manage"])
    headers = bearer(token)
    created = client.post("/api/v1/integrations", headers=headers, json={
        "provider": "webhook", "name": "API hook", "config": {"url": "http://127.0.0.1:9/hook",
                                                              "events": ["task.created"]}})
    assert created.status_code == 201, created.get_json()
    doc = created.get_json()
    assert doc["signing_secret"].startswith("whsec_") and doc["status"] == "pending"
    listed = client.get("/api/v1/integrations", headers=headers).get_json()["items"]
    assert [i["id"] for i in listed] == [doc["id"]] and "signing_secret" not in listed[0]
    assert client.post(f"/api/v1/integrations/{doc['id']}/test", headers=headers).status_code == 202
    log = client.get(f"/api/v1/integrations/{doc['id']}/log", headers=headers).get_json()
    assert [e["kind"] for e in log["items"]] == ["test"]
    bad = client.post("/api/v1/integrations", headers=headers, json={"provider": "webhook", "name": "x",
                                                                     "config": {"url": "http://127.0.0.1:9/"}})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "config.events"
    current = client.get(f"/api/v1/integrations/{doc['id']}", headers=headers)
    assert client.patch(f"/api/v1/integrations/{doc['id']}", headers=headers,
                        json={"name": "Renamed"}).status_code == 428  # If-Match first
    renamed = client.patch(f"/api/v1/integrations/{doc['id']}", json={"name": "Renamed", "config": {
        "events": ["task.created", "task.completed"]}}, headers={**headers, "If-Match": current.headers["ETag"]})
    assert renamed.status_code == 200, renamed.get_json()
    assert renamed.get_json()["config"] == {"url": "http://127.0.0.1:9/hook", "events": ["task.created", "task.completed"]}
    rotated = client.post(f"/api/v1/integrations/{doc['id']}/credentials", headers=headers, json={})
    assert rotated.status_code == 200 and rotated.get_json()["signing_secret"] not in (None, doc["signing_secret"])
    only_view = token_for(app, client, world["a"]["id"], ["integrations:view"])
    assert client.delete(f"/api/v1/integrations/{doc['id']}", headers=bearer(only_view)).status_code == 403
    assert client.delete(f"/api/v1/integrations/{doc['id']}", headers=headers).status_code == 204
    document = client.get("/api/v1/openapi.json").get_json()
    assert "Event_device_status_changed" in document["components"]["schemas"]
    assert "device.status_changed" in document["webhooks"]


def test_concurrent_creations_never_pass_the_limit(app, factory):
    """Counted and created under the tenant lock: eight at once against a limit of three."""
    from portal.integrations import services
    from portal.rules import RuleViolation
    from portal.tenancy import TenantContext
    from portal.tenancy.roles import system_role
    from portal.tenancy.models import MembershipRole
    from portal.tenants.models import Tenant
    t = factory.tenant(members={"owner": factory.user()}, max_integrations=3)
    barrier, outcomes = threading.Barrier(8), []

    def create(n: int):
        with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
            ctx = TenantContext(db.session.get(Tenant, t["id"]), None, system_role(MembershipRole.OWNER))
            barrier.wait()
            try:
                services.create(ctx, "webhook", f"Hook {n}", {"url": "http://127.0.0.1:9/", "events": ["task.created"]})
                db.session.commit()
                outcomes.append("created")
            except RuleViolation as exc:
                db.session.rollback()
                outcomes.append(exc.message)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes.count("created") == 3
    assert all("allows 3 integrations and 0 are free" in o for o in outcomes if o != "created")
