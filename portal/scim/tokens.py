"""SCIM bearer tokens: made with `secrets`, stored as SHA-256 hashes (why a fast hash: see
portal/api/credentials.py; these are 256-bit random values too). The `pst_` prefix lets secret
scanners recognise a leaked one."""
from __future__ import annotations

import hashlib
import secrets

PREFIX = "pst_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(b"portal-scim-token\x00" + token.encode()).digest()
