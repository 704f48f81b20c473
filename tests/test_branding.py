"""An organization's branding: a logo (decoded and re-encoded, never SVG) and an accent colour
readable under white text, shown in the header of its own pages only."""
from __future__ import annotations

import io
import re
import struct
import zlib

import pytest
from conftest import csrf_token, login
from PIL import Image

from portal.audit.models import AuditLog
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.organization.branding import contrast_with_white


def image_bytes(fmt: str, size=(40, 20), colour=(200, 30, 30), **save) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt, **save)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (the pixels never follow)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def org(app, factory):
    users = {r: factory.user(name=f"{r.title()} Brand") for r in ("owner", "admin")}
    t = factory.tenant(members=users)
    other_owner = factory.user(name="Other Brand")
    other = factory.tenant(members={"owner": other_owner})
    clients = {}
    for key, user in [*users.items(), ("other", other_owner)]:
        clients[key] = app.test_client()
        login(clients[key], user.email)
    return {"slug": t["slug"], "id": t["id"], "other": other["slug"], "c": clients}


def upload(client, slug, data: bytes, filename: str):
    return client.post(f"/t/{slug}/settings/logo", content_type="multipart/form-data",
                       data={"csrf_token": csrf_token(client), "logo": (io.BytesIO(data), filename)})


def logo_url(page: str) -> str | None:
    found = re.search(r'<img class="tenant-logo" src="([^"]+)"', page)
    return found.group(1).replace("&amp;", "&") if found else None


ACCEPTED = [("PNG", "logo.png", "image/png"), ("JPEG", "logo.jpeg", "image/jpeg"), ("WEBP", "logo.webp", "image/webp")]


def test_each_accepted_type_is_stored_re_encoded_and_served_to_members_only(app, org):
    for fmt, filename, media_type in ACCEPTED:  # one organization for all three: the sign-ins are the cost
        _accepted(org, fmt, filename, media_type)


def _accepted(org, fmt, filename, media_type):
    owner, slug = org["c"]["owner"], org["slug"]
    extra = {"exif": Image.Exif()} if fmt != "PNG" else {}
    if fmt == "JPEG":
        exif = Image.Exif()
        exif[0x010F] = "SecretCam"  # Make: metadata that must not survive
        extra = {"exif": exif.tobytes()}
    original = image_bytes(fmt, **extra)
    r = upload(owner, slug, original, filename)
    assert r.status_code == 303, r.get_data(as_text=True)
    page = owner.get(f"/t/{slug}/").get_data(as_text=True)
    url = logo_url(page)
    assert url and url.startswith(f"/t/{slug}/logo?v=")
    served = owner.get(url)
    assert served.status_code == 200 and served.mimetype == media_type
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "immutable" in served.headers["Cache-Control"] and served.headers["ETag"]
    assert b"SecretCam" not in served.data
    again = Image.open(io.BytesIO(served.data))
    assert again.format == fmt and again.size == (40, 20) and not again.getexif()
    assert owner.get(url, headers={"If-None-Match": served.headers["ETag"]}).status_code == 304
    # The admin (a member) sees it; another organization's member gets the usual 404, even with the URL.
    assert org["c"]["admin"].get(url).status_code == 200
    assert org["c"]["other"].get(url).status_code == 404
    assert logo_url(org["c"]["other"].get(f"/t/{org['other']}/").get_data(as_text=True)) is None


REFUSED = [
    (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "logo.svg", "SVG images are not accepted"),
    (b'<?xml version="1.0"?><svg/>', "logo.png", "SVG images are not accepted"),
    (b"\x89PNG" + b"\0" * (300 * 1024), "logo.png", "a logo may be at most 256 KB"),
    (image_bytes("PNG", size=(1500, 10)), "logo.png", "1,500 × 10 pixels"),
    (png_claiming(12_000, 12_000), "logo.png", "decompression bomb"),
    (b"GIF89a not really anything", "logo.png", "is not a PNG, JPEG or WebP image"),
    (image_bytes("PNG")[:60], "logo.png", "could not be decoded"),
    (image_bytes("JPEG"), "logo.png", "named .png but holds a JPEG image"),
]


def test_refused_uploads_say_why_and_change_nothing(app, org):
    owner, slug = org["c"]["owner"], org["slug"]
    for data, filename, message in REFUSED:
        r = upload(owner, slug, data, filename)
        body = r.get_data(as_text=True)
        assert r.status_code == 422 and message in body.replace("&#39;", "'"), (filename, message)
        assert 'aria-invalid="true"' in body
    assert logo_url(owner.get(f"/t/{slug}/").get_data(as_text=True)) is None
    assert owner.get(f"/t/{slug}/logo").status_code == 404


def test_accent_colour_is_checked_shown_in_its_tenant_only_and_reset(app, org):
    owner, slug = org["c"]["owner"], org["slug"]
    token = csrf_token(owner)
    r = owner.post(f"/t/{slug}/settings/accent", data={"csrf_token": token, "accent": "yellow"})
    assert r.status_code == 422 and "six hexadecimal digits" in r.get_data(as_text=True)
    r = owner.post(f"/t/{slug}/settings/accent", data={"csrf_token": token, "accent": "#ffcc00"})
    assert r.status_code == 422 and "contrast ratio of 1.5" in r.get_data(as_text=True)
    assert round(contrast_with_white("#767676"), 2) == 4.54 and contrast_with_white("#777777") < 4.5
    r = owner.post(f"/t/{slug}/settings/accent", data={"csrf_token": token, "accent": "#0B6E4F"})
    assert r.status_code == 303
    page = owner.get(f"/t/{slug}/devices/").get_data(as_text=True)
    assert f'href="/t/{slug}/brand.css?v=0b6e4f"' in page and 'class="sidebar branded"' in page
    css = owner.get(f"/t/{slug}/brand.css?v=0b6e4f")
    assert css.mimetype == "text/css" and "--brand: #0b6e4f;" in css.get_data(as_text=True)
    assert "immutable" in css.headers["Cache-Control"]
    other_page = org["c"]["other"].get(f"/t/{org['other']}/").get_data(as_text=True)
    assert "brand.css" not in other_page and "branded" not in other_page
    assert org["c"]["other"].get(f"/t/{slug}/brand.css").status_code == 404
    assert "brand.css" not in owner.get("/account/profile").get_data(as_text=True)  # outside a tenant: no branding
    r = owner.post(f"/t/{slug}/settings/accent/reset", data={"csrf_token": token})
    assert r.status_code == 303 and "brand.css" not in owner.get(f"/t/{slug}/").get_data(as_text=True)
    with app.app_context(), tenant_scope(db.session, org["id"], actor="test:setup"):
        actions = [(a.action, a.after) for a in db.session.query(AuditLog).filter(
            AuditLog.tenant_id == org["id"], AuditLog.action == "tenant.accent").order_by(AuditLog.created_at)]
    assert actions == [("tenant.accent", {"accent": "#0b6e4f"}), ("tenant.accent", {"accent": None})]


def test_removing_the_logo_is_audited_and_only_owners_brand(app, org):
    owner, admin, slug = org["c"]["owner"], org["c"]["admin"], org["slug"]
    assert upload(admin, slug, image_bytes("PNG"), "logo.png").status_code == 403
    assert upload(owner, slug, image_bytes("PNG"), "logo.png").status_code == 303
    r = owner.post(f"/t/{slug}/settings/logo/remove", data={"csrf_token": csrf_token(owner)})
    assert r.status_code == 303
    assert logo_url(owner.get(f"/t/{slug}/").get_data(as_text=True)) is None
    assert owner.get(f"/t/{slug}/logo").status_code == 404
    audit_page = owner.get(f"/t/{slug}/audit/").get_data(as_text=True)
    assert "uploaded the organization" in audit_page and "removed the organization" in audit_page
