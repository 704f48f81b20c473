"""CSV export (streamed, the current filter) and import (per-line report, all-or-nothing)."""
from __future__ import annotations

import csv
import io
import re

import pytest
import sqlalchemy as sa

from conftest import csrf_token, login
from portal.audit.models import AuditLog
from portal.database.context import tenant_scope
from portal.devices import csvio
from portal.devices.models import Device
from portal.extensions import db

HEADER = "name,type,serial_number,status,site,firmware_version,last_seen_at,metadata\n"


def ws_slug(factory) -> str:
    # After the sample tenants' slugs, so the system admin's first page of tenants keeps them.
    return f"ws-{factory._unique()}"


@pytest.fixture
def shop(app, factory):
    owner, member = factory.user(name="CSV Owner"), factory.user(name="CSV Member")
    t = factory.tenant(members={"owner": owner, "member": member}, sites=2, devices=2, slug=ws_slug(factory))
    client = app.test_client()
    login(client, owner.email)
    return {"t": t, "slug": t["slug"], "c": client, "site": f"Site 0 {t['slug']}", "other": f"Site 1 {t['slug']}",
            "member": member}


def count(app, tenant_id, model=Device, *where) -> int:
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(
            model.tenant_id == tenant_id, *where))


def upload(shop, content, *, htmx=False, partial=False, name="devices.csv"):
    data = content.encode() if isinstance(content, str) else content
    form = {"csrf_token": csrf_token(shop["c"]), "file": (io.BytesIO(data), name)}
    if partial:
        form["partial"] = "y"
    return shop["c"].post(f"/t/{shop['slug']}/devices/import", data=form, content_type="multipart/form-data",
                          headers={"HX-Request": "true"} if htmx else {})


def report(response) -> list[tuple[int, str]]:
    return [(int(n), reason) for n, reason in re.findall(
        r'<tr><td class="num">(\d+)</td><td>([^<]*)</td></tr>', response.get_data(as_text=True))]


def test_import_creates_devices_with_an_audit_row_each(app, shop):
    before = count(app, shop["t"]["id"])
    r = upload(shop, HEADER +
               f'Gate Camera,camera,GC-1,online,{shop["site"]},2.0,2026-01-01T10:00:00Z,"{{""specs"": {{""fps"": 30}}}}"\n'
               f"Door Sensor,SENSOR,DS-1,,{shop['other'].upper()},,,\n")
    assert r.status_code == 303 and r.headers["Location"] == f"/t/{shop['slug']}/devices/"
    assert count(app, shop["t"]["id"]) == before + 2
    assert count(app, shop["t"]["id"], AuditLog, AuditLog.action == "device.import") == 2
    with app.app_context(), tenant_scope(db.session, shop["t"]["id"], actor="test:setup"):
        gate = db.session.scalar(sa.select(Device).where(Device.serial_number == "GC-1"))
        assert gate.meta == {"specs": {"fps": 30}} and gate.last_seen_at.year == 2026
    # With htmx: the browser is sent to the list.
    r = upload(shop, HEADER + f"Hall Meter,meter,HM-1,online,{shop['site']},,,\n", htmx=True)
    assert r.status_code == 200 and r.headers["HX-Redirect"] == f"/t/{shop['slug']}/devices/"


def test_rejected_rows_are_reported_by_line_and_nothing_is_written(app, shop):
    before = count(app, shop["t"]["id"])
    content = (HEADER +
               f"Good One,sensor,OK-1,online,{shop['site']},,,\n"                    # line 2
               f"Bad Type,toaster,BT-1,online,{shop['site']},,,\n"                   # 3
               f"Nowhere,sensor,NW-1,online,Atlantis,,,\n"                          # 4
               f"Taken,sensor,sn-{shop['slug']}-0-0,online,{shop['site']},,,\n"     # 5: exists, other case
               f"Twice A,sensor,TW-1,online,{shop['site']},,,\n"                     # 6
               f"Twice B,sensor,tw-1,online,{shop['site']},,,\n"                     # 7
               "\n"                                                                 # 8: blank, skipped
               f"Short,sensor\n"                                                    # 9
               f"Bad JSON,sensor,BJ-1,online,{shop['site']},,,{{oops\n"              # 10
               f"Bad Time,sensor,BTM-1,online,{shop['site']},,yesterday,\n"          # 11
               f",sensor,NN-1,online,{shop['site']},,,\n"                            # 12
               f'"Multi\nline",sensor,ML-1,nope,{shop["site"]},,,\n')               # 13-14: bad status
    r = upload(shop, content)
    assert r.status_code == 422
    lines = report(r)
    assert [n for n, _ in lines] == [3, 4, 5, 7, 9, 10, 11, 12, 13]
    reasons = dict(lines)
    assert "type “toaster” is not one of" in reasons[3]
    assert "site “Atlantis” is not one of your sites" in reasons[4]
    assert "already exists" in reasons[5]
    assert "repeats line 6" in reasons[7]
    assert "has 2 fields, expected 8" in reasons[9]
    assert "metadata is not valid JSON" in reasons[10]
    assert "not an ISO 8601 time" in reasons[11]
    assert "name is empty" in reasons[12]
    assert "status “nope”" in reasons[13]
    assert "Nothing was imported: 9 of 11 lines are rejected" in " ".join(r.get_data(as_text=True).split())
    assert count(app, shop["t"]["id"]) == before
    # Asked for, the valid lines go in and the report still lists the others.
    r = upload(shop, content, partial=True)
    assert r.status_code == 200 and "Imported 2 devices; 9 lines rejected" in " ".join(r.get_data(as_text=True).split())
    assert count(app, shop["t"]["id"]) == before + 2


@pytest.mark.parametrize("content, message", [
    (b"", "The file is empty."),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "This is not a CSV file: it contains binary data."),
    (HEADER.encode() + "Caf\xe9,sensor,X-1,online,S,,,\n".encode("latin-1"), "The file is not UTF-8 text (line 2)"),
    (HEADER.encode() + b'"unterminated,sensor,X-1,online,S,,,\n', "This is not a well-formed CSV file"),
    (b"name,kind,serial,site\nA,sensor,X,S\n",
     "Wrong columns in line 1: unknown columns kind, serial; missing columns type, serial_number."),
    (b"name,type,serial_number,site,site\n", "repeated column site"),
    (HEADER.encode(), "The file has a header but no devices."),
])
def test_malformed_files_are_refused_with_a_clear_message(app, shop, content, message):
    before = count(app, shop["t"]["id"])
    r = upload(shop, content, htmx=True)
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and "<html" not in html and 'id="import-report"' in html
    assert message in html.replace("&#39;", "'")
    assert count(app, shop["t"]["id"]) == before


def test_oversized_and_overlong_files(app, shop, monkeypatch):
    # Just over the limit: read, measured and refused with the sizes.
    big = HEADER + ("x" * 100 + ",sensor,S,online,Site,,,\n") * (csvio.MAX_BYTES // 120 + 1000)
    r = upload(shop, big[: csvio.MAX_BYTES + 10_000])
    assert r.status_code == 422 and "the limit is 2.0 MB" in r.get_data(as_text=True)
    # Far over it: refused before the upload is even parsed.
    r = upload(shop, b"x" * (csvio.MAX_BYTES + 200_000))
    assert r.status_code == 413 and "larger than 2 MB" in r.get_data(as_text=True)
    monkeypatch.setattr(csvio, "MAX_ROWS", 3)
    r = upload(shop, HEADER + "".join(f"D{i},sensor,MR-{i},online,{shop['site']},,,\n" for i in range(4)))
    assert r.status_code == 422 and "more than 3 devices" in r.get_data(as_text=True)
    assert count(app, shop["t"]["id"], Device, Device.serial_number.like("MR-%")) == 0


def test_export_streams_the_current_filter_and_imports_back(app, shop, factory):
    slug = shop["slug"]
    upload(shop, HEADER + f'=cmd(),sensor,-X-1,online,{shop["site"]},,,"{{""specs"": {{""a"": 1}}}}"\n')
    r = shop["c"].get(f"/t/{slug}/devices/export.csv?site={shop['t']['sites'][0]}")
    assert r.status_code == 200 and r.is_streamed and r.mimetype == "text/csv"
    assert f'filename="devices-{slug}-' in r.headers["Content-Disposition"]
    exported = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["serial_number"] for row in exported] == ["'-X-1", f"SN-{slug}-0-0", f"SN-{slug}-0-1"]
    assert exported[0]["name"] == "'=cmd()" and exported[0]["metadata"] == '{"specs":{"a":1}}'  # no formulas
    # The export is an import file: another tenant with a site of the same name takes it as is.
    owner = factory.user(name="Other Owner")
    other = factory.tenant(members={"owner": owner}, sites=0, devices=0, slug=ws_slug(factory))
    with app.app_context(), tenant_scope(db.session, other["id"], actor="test:setup"):
        from portal.sites.models import Site
        db.session.add(Site(tenant_id=other["id"], name=shop["site"], timezone="UTC"))
        db.session.commit()
    client = app.test_client()
    login(client, owner.email)
    r = upload({"c": client, "slug": other["slug"]}, r.get_data())
    assert r.status_code == 303
    with app.app_context(), tenant_scope(db.session, other["id"], actor="test:setup"):
        names = set(db.session.scalars(sa.select(Device.name)))
        assert names == {"=cmd()", f"Device 0-0 {slug}", f"Device 0-1 {slug}"}


def test_members_cannot_import_and_export_only_their_sites(app, shop):
    member = app.test_client()
    login(member, shop["member"].email)
    assert member.get(f"/t/{shop['slug']}/devices/import").status_code == 403
    exported = member.get(f"/t/{shop['slug']}/devices/export.csv").get_data(as_text=True)
    assert exported.strip() == HEADER.strip()  # assigned to no site
