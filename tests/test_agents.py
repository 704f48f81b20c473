"""Device agents (issue 15): credentials, heartbeats (single and gateway batches), tasks claimed
exactly once, results with size limits, expiry, and the reference agent end to end."""
from __future__ import annotations

import hashlib
import re
import threading
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
import sqlalchemy as sa
from conftest import csrf_token, login

from portal.agent.__main__ import main as agent_main
from portal.agents.models import (
    AgentCredential,
    AgentResult,
    AgentTask,
    Command,
)
from portal.agents.tasks import expire_all
from portal.audit.models import AuditLog
from portal.database.context import tenant_scope
from portal.devices.models import Device, DeviceStatus
from portal.extensions import db


@pytest.fixture
def shop(factory):
    owner, member = factory.user(name="Olive Owner"), factory.user(name="Max Member")
    t = factory.tenant(members={"owner": owner, "member": member}, sites=1, devices=4)
    other = factory.tenant(members={"owner": factory.user()}, sites=1, devices=2)
    return {"t": t, "other": other, "owner": owner, "member": member}


def issue(client, slug, device_id, gateway=False) -> str:
    data = {"csrf_token": csrf_token(client)} | ({"gateway": "y"} if gateway else {})
    made = client.post(f"/t/{slug}/devices/{device_id}/agent/credential", data=data)
    assert made.status_code == 303  # POST-redirect-GET: the secret is shown by the GET, once
    page = client.get(made.headers["Location"])
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    return re.search(r'id="agent-secret"[^>]*value="([^"]+)"', page.get_data(as_text=True)).group(1)


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def beat(client, secret, **body):
    return client.post("/api/v1/agent/heartbeat", json=body, headers=bearer(secret))


def rows(app, tenant_id, stmt):
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        return db.session.execute(stmt).all()


def audit_actions(app, tenant_id, device_id=None):
    stmt = sa.select(AuditLog.action, AuditLog.user_id, AuditLog.details).where(AuditLog.tenant_id == tenant_id)
    if device_id:
        stmt = stmt.where(AuditLog.resource_id == str(device_id))
    return rows(app, tenant_id, stmt.order_by(AuditLog.seq))


def test_credential_lifecycle(app, client, shop):
    t, device = shop["t"], shop["t"]["devices"][0]
    login(client, shop["owner"].email)
    secret = issue(client, t["slug"], device)
    assert secret.startswith("pda_") and len(secret) > 40
    stored = rows(app, t["id"], sa.select(AgentCredential.secret_hash, AgentCredential.revoked_at))
    assert stored == [(hashlib.sha256(secret.encode()).digest(), None)]  # only the hash
    assert secret not in client.get(f"/t/{t['slug']}/devices/{device}").get_data(as_text=True)

    anonymous = app.test_client()
    assert beat(anonymous, secret, status="online").status_code == 200
    rotated = issue(client, t["slug"], device)
    refused = beat(anonymous, secret, status="online")
    assert refused.status_code == 401 and refused.mimetype == "application/problem+json"
    assert refused.json["status"] == 401 and "WWW-Authenticate" in refused.headers
    assert beat(anonymous, rotated).status_code == 200
    revoked = client.post(f"/t/{t['slug']}/devices/{device}/agent/credential/revoke",
                          data={"csrf_token": csrf_token(client)})
    assert revoked.status_code == 303
    assert beat(anonymous, rotated).status_code == 401
    assert beat(anonymous, "pda_" + "x" * 43).status_code == 401
    assert anonymous.post("/api/v1/agent/heartbeat", json={}).status_code == 401
    actions = [a for a, _, _ in audit_actions(app, t["id"], device)]
    assert actions == ["agent.credential_issue", "agent.credential_rotate", "agent.credential_revoke"]
    log = client.get(f"/t/{t['slug']}/audit/?type=device").get_data(as_text=True)
    assert "Olive Owner gave ‘Device 0-0" in log and "Olive Owner revoked the agent credential of ‘Device 0-0" in log
    # Without a CSRF token the cookie route refuses; the bearer route needs none.
    assert client.post(f"/t/{t['slug']}/devices/{device}/agent/credential").status_code == 400
    # A member (agents:run only) may not issue credentials.
    member = app.test_client()
    login(member, shop["member"].email)
    assert member.post(f"/t/{t['slug']}/devices/{device}/agent/credential",
                       data={"csrf_token": csrf_token(member)}).status_code == 403


def test_heartbeats_single_and_gateway_batches(app, client, shop):
    t, other = shop["t"], shop["other"]
    login(client, shop["owner"].email)
    single = issue(client, t["slug"], t["devices"][0])
    gateway = issue(client, t["slug"], t["devices"][1], gateway=True)
    agent = app.test_client()

    # A status change is audited once, with the agent as the actor; a plain heartbeat writes nothing.
    assert beat(agent, single, status="maintenance", firmware="2.0.1", metrics={"cpu": 0.5}).json["changed"] == 1
    before = len(audit_actions(app, t["id"]))
    for _ in range(3):
        assert beat(agent, single, status="maintenance", firmware="2.0.1").status_code == 200
    assert len(audit_actions(app, t["id"])) == before
    action, user_id, details = audit_actions(app, t["id"], t["devices"][0])[-1]
    assert (action, user_id, details["actor"]["kind"]) == ("device.status", None, "agent")
    device = rows(app, t["id"], sa.select(Device).where(Device.id == t["devices"][0]))[0][0]
    assert (device.status, device.firmware_version, device.meta["metrics"]) == (
        DeviceStatus.MAINTENANCE, "2.0.1", {"cpu": 0.5})
    assert datetime.now(UTC) - device.last_seen_at < timedelta(minutes=1)
    history = client.get(f"/t/{t['slug']}/devices/{t['devices'][0]}").get_data(as_text=True)
    assert "The agent of Device 0-0 " in history and " changed status from online to maintenance" in history

    # Only a gateway reports for others; bad fields are 422 with field errors.
    batch = [{"device_id": str(d), "status": "error"} for d in t["devices"]]
    assert beat(agent, single, devices=batch).status_code == 403
    bad = beat(agent, gateway, devices=[{"device_id": "nope", "status": "exploded"}])
    assert bad.status_code == 422 and {e["field"] for e in bad.json["errors"]} == {
        "devices[0].device_id", "devices[0].status"}
    done = beat(agent, gateway, devices=batch)
    assert done.status_code == 200 and done.json == {"accepted": 4, "changed": 4, "skipped": []}
    statuses = rows(app, t["id"], sa.select(Device.status).where(Device.tenant_id == t["id"]))
    assert {s for s, in statuses} == {DeviceStatus.ERROR}

    # Another tenant's device ids are unknown here: 404, and nothing of the batch is recorded.
    foreign = batch[:2] + [{"device_id": str(other["devices"][0]), "status": "online"}]
    refused = beat(agent, gateway, devices=[dict(b, status="online") for b in foreign])
    assert refused.status_code == 404 and refused.json["unknown_devices"] == [str(other["devices"][0])]
    statuses = rows(app, t["id"], sa.select(Device.status).where(Device.tenant_id == t["id"]))
    assert {s for s, in statuses} == {DeviceStatus.ERROR}
    assert rows(app, other["id"], sa.select(Device.status, Device.last_seen_at).where(
        Device.id == other["devices"][0])) == [(DeviceStatus.ONLINE, None)]

    # The batch limit: 1,000 devices per request.
    too_many = [{"device_id": str(uuid4())} for _ in range(1001)]
    over = beat(agent, gateway, devices=too_many)
    assert over.status_code == 413 and over.json["limit"] == 1000
    assert beat(agent, gateway, devices=too_many[:1000]).status_code == 404  # within the limit: unknown ids
    duplicate = beat(agent, gateway, devices=[batch[0], batch[0]])
    assert duplicate.status_code == 422


def queue(client, slug, device, command="collect_diagnostics", **fields):
    return client.post(f"/t/{slug}/devices/{device}/agent/tasks",
                       data={"csrf_token": csrf_token(client), "command": command, "expires": "1h", **fields})


def test_tasks_are_claimed_exactly_once_and_reported(app, client, shop):
    t = shop["t"]
    device = t["devices"][2]
    login(client, shop["owner"].email)
    secret = issue(client, t["slug"], device)
    for _ in range(6):
        assert queue(client, t["slug"], device).status_code == 303

    claimed, lock = [], threading.Lock()

    def poll():
        c = app.test_client()
        while True:
            r = c.get("/api/v1/agent/tasks?wait=0", headers=bearer(secret))
            if r.status_code == 204:
                return
            assert r.status_code == 200
            with lock:
                claimed.append(r.json["id"])

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    assert len(claimed) == 6 and len(set(claimed)) == 6  # every task once, none twice

    # A poll that waits returns as soon as a task is queued, and 204 at the end of its wait.
    agent = app.test_client()
    empty = agent.get("/api/v1/agent/tasks?wait=0.3", headers=bearer(secret))
    assert empty.status_code == 204

    task_id = claimed[0]
    url = f"/api/v1/agent/tasks/{task_id}/result"
    big_log = agent.post(url, json={"status": "succeeded", "log": "x" * 70_000}, headers=bearer(secret))
    assert big_log.status_code == 422 and big_log.json["errors"][0]["field"] == "log"
    huge = agent.post(url, data=b'{"log": "' + b"x" * 300_000 + b'"}', headers=bearer(secret),
                      content_type="application/json")
    assert huge.status_code == 413 and huge.mimetype == "application/problem+json"
    ok = agent.post(url, json={"status": "succeeded", "exit_code": 0, "output": {"uptime": 5}, "log": "fine\n"},
                    headers=bearer(secret))
    assert ok.status_code == 200 and ok.json["status"] == "succeeded"
    again = agent.post(url, json={"status": "failed"}, headers=bearer(secret))
    assert again.status_code == 409
    assert agent.post(f"/api/v1/agent/tasks/{uuid4()}/result", json={"status": "failed"},
                      headers=bearer(secret)).status_code == 404
    malformed = agent.post("/api/v1/agent/tasks/not-a-task/result", json={}, headers=bearer(secret))
    assert malformed.status_code == 404 and malformed.mimetype == "application/problem+json"

    # Another device's agent (even of the same tenant) cannot see or report this device's tasks.
    stranger = issue(client, t["slug"], t["devices"][3])
    assert agent.post(f"/api/v1/agent/tasks/{claimed[1]}/result", json={"status": "failed"},
                      headers=bearer(stranger)).status_code == 404
    assert agent.get("/api/v1/agent/tasks?wait=0", headers=bearer(stranger)).status_code == 204

    panel = client.get(f"/t/{t['slug']}/devices/{device}/agent", headers={"HX-Request": "true"})
    html = panel.get_data(as_text=True)
    assert panel.status_code == 200 and html.startswith('<div id="agent-tasks"') and 'hx-trigger="every 3s"' in html
    assert "Result: succeeded, exit code 0" in html and "fine" in html


def test_task_rules_and_expiry(app, client, shop):
    t = shop["t"]
    device = t["devices"][0]
    member = app.test_client()
    login(member, shop["member"].email)
    # The member is at no site: the device is not theirs (404); custom commands are for agents:manage.
    assert queue(member, t["slug"], device).status_code == 404
    login(client, shop["owner"].email)
    missing = queue(client, t["slug"], device, command="update_firmware")
    assert missing.status_code == 422 and "Give the firmware version" in missing.get_data(as_text=True)
    bad_json = queue(client, t["slug"], device, command="custom", parameters="{not json")
    assert bad_json.status_code == 422
    assert queue(client, t["slug"], device, command="custom", parameters='{"script": "status"}').status_code == 303

    now = datetime.now(UTC)
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        db.session.add(AgentTask(tenant_id=t["id"], device_id=device, command=Command.REBOOT,
                                 created_at=now - timedelta(hours=2), expires_at=now - timedelta(hours=1)))
        db.session.commit()
    with app.app_context():
        assert expire_all() >= 1
    statuses = rows(app, t["id"], sa.select(AgentTask.command, AgentTask.status).where(AgentTask.device_id == device))
    assert sorted((c.value, s.value) for c, s in statuses) == [("custom", "queued"), ("reboot", "expired")]
    assert "agent_task.expire" in [a for a, _, _ in audit_actions(app, t["id"])]
    from portal.jobs.engine import jobs
    jobs.perform_import_paths()
    assert "agents.expire_tasks" in jobs.tasks


def test_reference_agent_end_to_end(app, client, shop, live_server):
    t = shop["t"]
    device = t["devices"][3]
    login(client, shop["owner"].email)
    secret = issue(client, t["slug"], device)
    assert queue(client, t["slug"], device, command="collect_diagnostics").status_code == 303
    assert queue(client, t["slug"], device, command="update_firmware", version="9.9.9").status_code == 303
    assert queue(client, t["slug"], device, command="custom", parameters='{"x": 1}').status_code == 303
    # In this process (a subprocess would spend seconds importing the portal package), over HTTP.
    assert agent_main(["--url", live_server, "--device-secret", secret, "--once", "--wait", "0"]) == 0
    results = {c.value: (s.value, r.exit_code, r.output) for c, s, r in rows(
        app, t["id"], sa.select(AgentTask.command, AgentTask.status, AgentResult)
        .join(AgentResult, (AgentResult.tenant_id == AgentTask.tenant_id) & (AgentResult.task_id == AgentTask.id))
        .where(AgentTask.device_id == device))}
    assert results["collect_diagnostics"][0] == "succeeded" and "platform" in results["collect_diagnostics"][2]
    assert results["update_firmware"] == ("succeeded", 0, {"simulated": True, "from": "1.0.0", "to": "9.9.9"})
    assert results["custom"][:2] == ("failed", 127)
    firmware = rows(app, t["id"], sa.select(Device.firmware_version).where(Device.id == device))
    assert firmware == [("9.9.9",)]  # the agent reported its new firmware
    page = client.get(f"/t/{t['slug']}/devices/{device}").get_data(as_text=True)
    assert "Result: succeeded, exit code 0" in page and "firmware update simulated" in page
