"""/t/<slug>/audit/: what an owner reads, filters, pages and exports; what others never see."""
from __future__ import annotations

import csv
import io
import json
import re
import uuid

import pytest
import sqlalchemy as sa

from conftest import csrf_token, login
from portal import audit
from portal.database.context import tenant_scope
from portal.extensions import db


@pytest.fixture
def org(factory):
    owner = factory.user(name="Olive Owner")
    member = factory.user(name="Max Member")
    t = factory.tenant(members={"owner": owner, "member": member}, sites=2, devices=1)
    return {"t": t, "owner": owner, "member": member}


def text_of(response) -> str:
    return response.get_data(as_text=True)


def move_and_change(client, t):
    """Through the portal: move device 0 to the second site, then set it to maintenance."""
    token = csrf_token(client)
    device = t["devices"][0]
    moved = client.post(f"/t/{t['slug']}/devices/{device}/move", data={"site_id": str(t["sites"][1]),
                                                                         "csrf_token": token},
                        headers={"User-Agent": "AuditTest/1.0", "X-Request-ID": "req-move-1"})
    assert moved.status_code == 303
    changed = client.post(f"/t/{t['slug']}/devices/{device}/status", data={"status": "maintenance",
                                                                            "csrf_token": token})
    assert changed.status_code == 303
    return device


def test_owner_reads_changes_in_words_newest_first(app, org):
    t = org["t"]
    client = app.test_client()
    login(client, org["owner"].email)
    device = move_and_change(client, t)
    page = client.get(f"/t/{t['slug']}/audit/")
    assert page.status_code == 200 and "HX-Request" in page.headers["Vary"]
    html = text_of(page)
    status_at = html.index(f"Olive Owner changed the status of ‘Device 0-0 {t['slug']}’ from online to maintenance")
    move_at = html.index(f"Olive Owner moved ‘Device 0-0 {t['slug']}’ from Site 0 {t['slug']} to Site 1 {t['slug']}")
    assert status_at < move_at  # newest first
    assert f'href="/t/{t["slug"]}/devices/{device}"' in html  # the device still exists: linked
    device_page = text_of(client.get(f"/t/{t['slug']}/devices/{device}"))
    assert f'href="/t/{t["slug"]}/audit/?type=device&amp;resource={device}"' in device_page  # and back
    assert "req-move-1" in html and "AuditTest/1.0" in html and "127.0.0.1" in html
    # The expandable diff holds the before and after of what changed.
    assert "<del>online</del>" in html and "<ins>maintenance</ins>" in html
    assert 'href="/t/%s/audit/"' % t["slug"] in html  # the tab in the header


def test_htmx_gets_the_fragment_with_its_canonical_url(app, org):
    t = org["t"]
    client = app.test_client()
    login(client, org["owner"].email)
    move_and_change(client, t)
    response = client.get(f"/t/{t['slug']}/audit/?action=device.move&q=&resource=", headers={"HX-Request": "true"})
    html = text_of(response)
    assert response.status_code == 200 and "<html" not in html and 'id="audit-list"' in html
    assert response.headers["HX-Push-Url"] == f"/t/{t['slug']}/audit/?action=device.move"
    assert "moved" in html and "changed the status" not in html


def test_filters_by_resource_actor_text_and_dates(app, org, factory):
    t = org["t"]
    client = app.test_client()
    login(client, org["owner"].email)
    device = move_and_change(client, t)
    other_device = t["devices"][1]
    client.post(f"/t/{t['slug']}/devices/{other_device}/status",
                data={"status": "error", "csrf_token": csrf_token(client)})
    base = f"/t/{t['slug']}/audit/"
    only_one = text_of(client.get(f"{base}?type=device&resource={device}"))
    assert only_one.count('class="audit-entry"') == 2 and "from online to error" not in only_one
    assert text_of(client.get(f"{base}?actor={org['member'].id}")).count('class="audit-entry"') == 0
    assert text_of(client.get(f"{base}?actor={org['owner'].id}")).count('class="audit-entry"') == 3
    assert text_of(client.get(f"{base}?q=STATUS")).count('class="audit-entry"') == 2
    assert text_of(client.get(f"{base}?q=Device 0-0")).count('class="audit-entry"') == 2
    assert text_of(client.get(f"{base}?q=olive OWNER")).count('class="audit-entry"') == 3  # the actor's name
    assert "No entries match" in text_of(client.get(f"{base}?from=2999-01-01"))
    assert text_of(client.get(f"{base}?from=2000-01-01&to=2999-12-31")).count('class="audit-entry"') == 3


def test_bad_filter_values_get_a_message_not_an_error(app, org):
    t = org["t"]
    client = app.test_client()
    login(client, org["owner"].email)
    response = client.get(f"/t/{t['slug']}/audit/?from=yesterday&actor=bob&after=-5&to=2020-01-01&"
                          f"q={'x' * 5000}&resource=%F0%9F%92%A9")
    html = text_of(response)
    assert response.status_code == 200
    assert "is not a date" in html and "not one of this organization" in html


def test_keyset_pages_are_stable_and_complete(app, org):
    t = org["t"]
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        audit.record_many(t["id"], org["owner"].id, "device.update", "device",
                          [(uuid.uuid4(), {"name": f"n{i}"}, {"name": f"m{i}"}) for i in range(120)])
        db.session.commit()
    client = app.test_client()
    login(client, org["owner"].email)
    seen, url, pages = [], f"/t/{t['slug']}/audit/", 0
    while url:
        html = text_of(client.get(url))
        seen += [int(n) for n in re.findall(r"entry (\d+),", html)]
        nxt = re.search(r'href="([^"]*after=\d+)"', html)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
        pages += 1
    assert pages == 3 and seen == list(range(120, 0, -1))


def test_links_only_to_resources_that_still_exist(app, org):
    t = org["t"]
    client = app.test_client()
    login(client, org["owner"].email)
    token = csrf_token(client)
    created = client.post(f"/t/{t['slug']}/sites/new", data={"name": "Short-lived", "timezone": "UTC",
                                                             "csrf_token": token})
    assert created.status_code == 303
    site_url = created.headers["Location"]
    html = text_of(client.get(f"/t/{t['slug']}/audit/?action=site.create"))
    assert f'href="{site_url}"' in html
    assert client.post(f"{site_url}/delete", data={"csrf_token": token}).status_code == 303
    html = text_of(client.get(f"/t/{t['slug']}/audit/?action=site.create"))
    assert "created site ‘Short-lived’" in html and f'href="{site_url}"' not in html


def test_export_csv_follows_the_filter_and_is_itself_audited(app, org):
    t = org["t"]
    client = app.test_client()
    login(client, org["owner"].email)
    device = move_and_change(client, t)
    response = client.get(f"/t/{t['slug']}/audit/export.csv?type=device&resource={device}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(text_of(response))))
    assert [r["action"] for r in rows] == ["device.status", "device.move"]
    assert rows[1]["summary"].startswith("Olive Owner moved")
    assert json.loads(rows[0]["after"])["status"] == "maintenance"
    assert len(rows[0]["row_hash"]) == 64
    html = text_of(client.get(f"/t/{t['slug']}/audit/?action=audit.export"))
    assert "Olive Owner exported the audit log as csv" in html and str(device) in html


def test_export_jsonl_and_formula_cells(app, org, factory):
    t = org["t"]
    prankster = factory.user(name="=HYPERLINK(\"http://evil\")")
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        audit.record(t["id"], prankster.id, "device.create", "device", uuid.uuid4(), after={"name": "-1+1"})
        db.session.commit()
    client = app.test_client()
    login(client, org["owner"].email)
    lines = text_of(client.get(f"/t/{t['slug']}/audit/export.jsonl?action=device.create")).splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["action"] for r in records] == ["device.create"]
    assert records[0]["after"] == {"name": "-1+1"} and records[0]["actor"] == prankster.name
    row = next(csv.DictReader(io.StringIO(text_of(client.get(f"/t/{t['slug']}/audit/export.csv?action=device.create")))))
    # A spreadsheet would run a cell starting with = + - @ as a formula: such cells start with '.
    assert row["actor"] == "'" + prankster.name and row["summary"] == "'" + prankster.name + " created device ‘-1+1’"


def test_another_tenants_entries_never_show(app, org, factory):
    t = org["t"]
    other = factory.tenant(members={"owner": factory.user()})
    with app.app_context(), tenant_scope(db.session, other["id"], actor="test:setup"):
        audit.record(other["id"], None, "device.create", "device", other["devices"][0], after={"name": "Secret"})
        db.session.commit()
    client = app.test_client()
    login(client, org["owner"].email)
    assert 'class="audit-entry"' not in text_of(client.get(f"/t/{t['slug']}/audit/?q=Secret"))
    assert "Secret" not in text_of(client.get(f"/t/{t['slug']}/audit/export.jsonl"))
    assert 'class="audit-entry"' not in text_of(
        client.get(f"/t/{t['slug']}/audit/?type=device&resource={other['devices'][0]}"))


def test_members_are_refused_and_strangers_see_nothing(app, org, factory):
    t = org["t"]
    client = app.test_client()
    login(client, org["member"].email)
    assert client.get(f"/t/{t['slug']}/audit/").status_code == 403
    assert client.get(f"/t/{t['slug']}/audit/export.csv").status_code == 403
    assert f"/t/{t['slug']}/audit/" not in text_of(client.get(f"/t/{t['slug']}/"))
    stranger = app.test_client()
    login(stranger, factory.user().email)
    assert stranger.get(f"/t/{t['slug']}/audit/export.jsonl").status_code == 404
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        exports = db.session.execute(sa.text("SELECT count(*) FROM audit_logs WHERE action = 'audit.export'")).scalar()
    assert exports == 0  # refused exports are not written
