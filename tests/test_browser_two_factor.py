"""Two-factor enrolment in Chromium with the QR code itself: the image must decode in the
browser, read back (zxing-cpp, from a screenshot of the element) as the otpauth:// URI, and
the code computed from the secret in that URI turns two-factor on. The key printed beside the
image is never read."""
from __future__ import annotations

import io
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
import sqlalchemy as sa

from browser_support import sign_in
from conftest import PASSWORD
from portal.accounts.models import User
from portal.extensions import db

pytestmark = pytest.mark.browser

QR_ALT = "QR code for your authenticator app"


def decode_qr(png: bytes) -> str:
    import zxingcpp
    from PIL import Image

    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(results) == 1, f"{len(results)} QR codes found in the screenshot of the image"
    return results[0].text


def image_decoded(page, locator) -> bool:
    locator.wait_for(state="visible")
    page.wait_for_function("img => img.complete", arg=locator.element_handle())
    return locator.evaluate("img => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0")


def test_enrolment_by_scanning_the_qr_code(tab, app, factory):
    person = factory.user(name="Quinn Scanner")
    page = tab.page
    expect = sign_in(page, person.email, PASSWORD)
    page.goto("/account/two-factor")
    qr = page.get_by_role("img", name=QR_ALT)
    assert image_decoded(page, qr), "the QR code image did not decode (naturalWidth 0)"

    uris = {}
    for scheme in ("light", "dark"):  # an authenticator must read it in either page scheme
        page.emulate_media(color_scheme=scheme)
        uris[scheme] = decode_qr(qr.screenshot())
    assert uris["light"] == uris["dark"]
    uri = urlsplit(uris["light"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == f"/Portal:{person.email}"
    query = parse_qs(uri.query)
    assert query["issuer"] == ["Portal"]
    secret = query["secret"][0]

    page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("heading", name="Your backup codes")).to_be_visible()
    expect(page.locator("ul.codes li")).to_have_count(10)
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.id == person.id))
        assert user.has_mfa
    tab.assert_no_csp_errors()
