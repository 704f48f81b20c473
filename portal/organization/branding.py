"""An organization's branding: a logo and an accent colour, shown in the header of its pages.

The logo is decoded with Pillow and re-encoded before it is stored, so what the portal serves is
an image it wrote itself: no metadata (EXIF, GPS, text chunks, ICC profiles), no trailing bytes,
never SVG (which can carry scripts). The accent colour must keep white text readable on it
(WCAG contrast of at least 4.5:1). Both are recorded in `tenants.settings['branding']`, which
every tenant request already reads, so the header costs no extra statement; the image bytes
live in tenant_logos and are read only by the logo route.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from sqlalchemy import select

from .. import audit, images
from ..extensions import db
from ..rules import RuleViolation
from ..tenancy import TenantContext
from .models import LOGO_MAX_BYTES, TenantLogo

LOGO_MAX_SIDE = 1024
MIN_CONTRAST = 4.5
HEX = re.compile(r"#[0-9a-f]{6}")


@dataclass(frozen=True)
class Logo:
    content: bytes
    media_type: str
    width: int
    height: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def branding(tenant) -> dict:
    """{'accent': '#rrggbb', 'logo': version} or less; what the header and the routes read."""
    value = (tenant.settings or {}).get("branding")
    return value if isinstance(value, dict) else {}


def decode_logo(data: bytes, filename: str | None) -> Logo:
    """Check an upload by decoding it, and re-encode it. Raises RuleViolation(field='logo') with
    a message for the person uploading."""
    image, kind = images.open_checked(data, filename, max_bytes=LOGO_MAX_BYTES, max_side=LOGO_MAX_SIDE,
                                      noun="a logo", field="logo")
    width, height = image.size
    content = images.reencode(image, kind)
    if len(content) > LOGO_MAX_BYTES:
        raise RuleViolation(f"Re-encoded, the image is {images.kb(len(content))}: a logo may be at most "
                            f"{images.kb(LOGO_MAX_BYTES)}. Upload a smaller one.", field="logo")
    return Logo(content, images.FORMATS[kind][0], width, height)


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def contrast_with_white(hex_colour: str) -> float:
    """WCAG 2 contrast ratio of white text on the colour."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * _linear(r) + 0.7152 * _linear(g) + 0.0722 * _linear(b)
    return 1.05 / (luminance + 0.05)


def check_accent(value: str) -> str:
    colour = (value or "").strip().lower()
    if not HEX.fullmatch(colour):
        raise RuleViolation("Write the colour as # and six hexadecimal digits, e.g. #1d4ed8.", field="accent")
    ratio = contrast_with_white(colour)
    if ratio < MIN_CONTRAST:
        shown = math.floor(ratio * 100) / 100
        raise RuleViolation(f"White text on {colour} has a contrast ratio of {shown:.2f}:1; it needs at least "
                            f"{MIN_CONTRAST}:1 to stay readable (WCAG AA). Choose a darker colour.", field="accent")
    return colour


def _save_branding(ctx: TenantContext, **changes) -> tuple[dict, dict]:
    settings = dict(ctx.tenant.settings or {})
    before = dict(branding(ctx.tenant))
    after = {**before, **changes}
    after = {k: v for k, v in after.items() if v is not None}
    if after:
        settings["branding"] = after
    else:
        settings.pop("branding", None)
    ctx.tenant.settings = settings
    return before, after


def set_logo(ctx: TenantContext, logo: Logo) -> None:
    row = db.session.get(TenantLogo, ctx.tenant_id)
    if row is None:
        row = TenantLogo(tenant_id=ctx.tenant_id)
        db.session.add(row)
    before_logo = {"sha256": row.sha256, "media_type": row.media_type} if row.sha256 else None
    row.content, row.media_type, row.sha256 = logo.content, logo.media_type, logo.sha256
    row.width, row.height = logo.width, logo.height
    row.updated_at = db.func.now()
    _save_branding(ctx, logo=logo.sha256[:16])
    audit.record(ctx.tenant_id, ctx.user_id, "tenant.logo", "tenant", ctx.tenant_id, before=before_logo,
                 after={"sha256": logo.sha256, "media_type": logo.media_type, "width": logo.width,
                        "height": logo.height, "bytes": len(logo.content)})


def remove_logo(ctx: TenantContext) -> bool:
    row = db.session.get(TenantLogo, ctx.tenant_id)
    if row is None:
        return False
    before = {"sha256": row.sha256, "media_type": row.media_type}
    db.session.delete(row)
    _save_branding(ctx, logo=None)
    audit.record(ctx.tenant_id, ctx.user_id, "tenant.logo_remove", "tenant", ctx.tenant_id, before=before)
    return True


def set_accent(ctx: TenantContext, value: str | None) -> bool:
    """A checked colour, or None to go back to the portal's own. False when nothing changed."""
    colour = check_accent(value) if value is not None else None
    if branding(ctx.tenant).get("accent") == colour:
        return False
    before, after = _save_branding(ctx, accent=colour)
    audit.record(ctx.tenant_id, ctx.user_id, "tenant.accent", "tenant", ctx.tenant_id,
                 before={"accent": before.get("accent")}, after={"accent": after.get("accent")})
    return True


def current_logo(ctx: TenantContext) -> TenantLogo | None:
    return db.session.scalar(select(TenantLogo).where(TenantLogo.tenant_id == ctx.tenant_id))
