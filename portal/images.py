"""Uploaded pictures (an organization's logo, a person's avatar), checked by decoding them.

An upload is decoded with Pillow and re-encoded before it is stored, so what the portal serves is
an image it wrote itself: no metadata (EXIF, GPS, text chunks, ICC profiles), no trailing bytes,
never SVG (which can carry scripts). Each refusal is a RuleViolation with a sentence for the
person uploading."""
from __future__ import annotations

import io
import math
import warnings
from pathlib import PurePath

from PIL import Image, UnidentifiedImageError

from .rules import RuleViolation

# Pillow format -> (media type, the file name endings that may hold it)
FORMATS = {"PNG": ("image/png", (".png",)), "JPEG": ("image/jpeg", (".jpg", ".jpeg")),
           "WEBP": ("image/webp", (".webp",))}
ACCEPTED = "PNG, JPEG or WebP"


def kb(n: int) -> str:
    return f"{math.ceil(n / 1024):,} KB"


def open_checked(data: bytes, filename: str | None, *, max_bytes: int, max_side: int, noun: str,
                 field: str) -> tuple[Image.Image, str]:
    """The decoded image and its Pillow format, or RuleViolation(field=field). `noun` names what
    the picture is for in messages ("a logo")."""
    def refuse(message: str):
        raise RuleViolation(message, field=field)

    if not data:
        refuse(f"Choose an image file ({ACCEPTED}).")
    suffix = PurePath(filename or "").suffix.lower()
    head = data[:512].lstrip().lower()
    if suffix in (".svg", ".svgz") or head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) or b"<svg" in head:
        refuse(f"SVG images are not accepted (they can carry scripts): upload a {ACCEPTED} file.")
    if len(data) > max_bytes:
        refuse(f"The file is {kb(len(data))}: {noun} may be at most {kb(max_bytes)}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
            width, height = image.size
            if width > max_side or height > max_side:
                refuse(f"The image is {width:,} × {height:,} pixels: {noun} may be at most {max_side:,} pixels "
                       "on each side.")
            image.load()  # the whole image decodes, not only its header
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        refuse(f"This image claims so many pixels that decoding it could exhaust the server (a decompression bomb): "
               f"upload {noun} of at most {max_side:,} × {max_side:,} pixels.")
    except UnidentifiedImageError:
        refuse(f"This file is not a {ACCEPTED} image the portal can read.")
    except (OSError, SyntaxError, ValueError, EOFError):
        refuse(f"This image is damaged or incomplete: it could not be decoded. Export it again as {ACCEPTED}.")
    kind = image.format
    endings = FORMATS[kind][1]
    if suffix not in endings:
        named = suffix or "without an extension"
        refuse(f"The file is named {named} but holds a {kind.replace('WEBP', 'WebP')} image: rename it to "
               f"{endings[0]} or export it in the format its name says.")
    return image, kind


def clean_copy(image: Image.Image, kind: str) -> Image.Image:
    """A fresh image of the first frame: none of the upload's info, exif or icc profile comes across."""
    if kind == "JPEG":
        mode = "RGB"
    else:
        mode = "RGBA" if image.mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info else "RGB"
    pixels = image.convert(mode)
    clean = Image.new(mode, pixels.size)
    clean.paste(pixels)
    return clean


def reencode(image: Image.Image, kind: str) -> bytes:
    """The first frame saved again in its own format, without any of the upload's metadata."""
    clean = clean_copy(image, kind)
    out = io.BytesIO()
    if kind == "PNG":
        clean.save(out, "PNG", optimize=True)
    elif kind == "JPEG":
        clean.save(out, "JPEG", quality=90, optimize=True)
    else:
        clean.save(out, "WEBP", quality=90)
    return out.getvalue()
