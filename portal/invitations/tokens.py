"""Invitation tokens: 256 bits from `secrets`, only ever in the link; the database keeps the SHA-256."""
from __future__ import annotations

import hashlib
import secrets


def new_token() -> tuple[str, bytes]:
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
