"""A tenant's export: an owner asks, a real job worker writes the zip, the owner gets an email
with a link that works for 24 hours, and the zip holds the tenant's rows and no secrets."""
from __future__ import annotations

import asyncio
import io
import json
import re
import threading
import zipfile

import sqlalchemy as sa

from conftest import csrf_token, login, make_app
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.mail.outbox import body
from test_jobs import quiet_queue  # noqa: F401 (fixture)


def post(client, url, **data):
    return client.post(url, data={"csrf_token": csrf_token(client), **data})


def run_worker(db_urls):
    from portal.jobs.worker import run_async
    worker_app = make_app(db_urls)
    # A thread of its own: the browser tests leave an event loop running in this one.
    burst = threading.Thread(target=lambda: asyncio.run(run_async(worker_app, concurrency=1, wait=False,
                                                                  install_signal_handlers=False)))
    burst.start()
    burst.join(60)


def test_owner_exports_everything_but_secrets(app, db_urls, factory, quiet_queue):  # noqa: F811
    owner, other = factory.user(name="Export Owner"), factory.user()
    t = factory.tenant(members={"owner": owner, "member": other}, sites=2, devices=3)
    stranger_tenant = factory.tenant(members={"owner": other}, sites=1, devices=1)
    c = app.test_client()
    login(c, owner.email)
    post(c, f"/t/{t['slug']}/invitations/", emails="pending@example.com", role="member")  # a token hash to hide
    r = post(c, f"/t/{t['slug']}/settings/export")
    assert r.status_code == 303
    again = post(c, f"/t/{t['slug']}/settings/export")
    assert "already being prepared" in c.get(again.headers["Location"]).get_data(as_text=True)
    progress = c.get(f"/t/{t['slug']}/settings/export", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Preparing the export" in progress and 'hx-trigger="every 2s"' in progress

    run_worker(db_urls)

    progress = c.get(f"/t/{t['slug']}/settings/export", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "is ready" in progress and "every 2s" not in progress
    with app.app_context():
        message = db.session.scalars(sa.select(OutboxMessage).where(
            OutboxMessage.kind == "tenant_export", OutboxMessage.recipient == owner.email)).one()
        text = body(message)["text"]
    link = re.search(r"(/t/\S+/settings/exports/\S+)", text).group(1)
    download = c.get(link)
    assert download.status_code == 200 and download.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(download.data))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["tenant_id"] == str(t["id"])
    assert manifest["tables"]["devices"] == 6 and manifest["tables"]["sites"] == 2
    assert manifest["tables"]["user_tenant_associations"] == 2 and manifest["tables"]["tenant_invitations"] == 1
    assert manifest["tables"]["audit_logs"] >= 1 and manifest["tables"]["users"] == 2
    everything = b"".join(archive.read(name) for name in archive.namelist())
    assert b"token_hash" not in everything and b"password_hash" not in everything
    assert "tenant_keys.jsonl" not in archive.namelist() and b"wrapped_key" not in everything  # keys stay home
    assert str(stranger_tenant["id"]).encode() not in everything  # nothing of another tenant
    devices = [json.loads(line) for line in archive.read("devices.jsonl").splitlines()]
    assert {d["tenant_id"] for d in devices} == {str(t["id"])}
    # The link is the owner's organization's, for those who may manage it; nobody else's.
    assert c.get(link.replace("exports/", "exports/x")).status_code == 410
    member = app.test_client()
    login(member, other.email)
    assert member.get(link).status_code == 403  # a member of the tenant, without tenant:manage
    assert member.get(link.replace(t["slug"], stranger_tenant["slug"])).status_code == 410  # their own tenant
