"""Keys derived from SECRET_KEY for data the database must not hold in clear (email bodies in
the outbox, TOTP secrets, backup codes). Infrastructure, like config: any area may use it."""
from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet
from flask import current_app


def fernet(purpose: str) -> Fernet:
    key = hashlib.sha256(f"portal-{purpose}:".encode() + current_app.config["SECRET_KEY"].encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def keyed_hash(purpose: str, value: str) -> bytes:
    """HMAC-SHA256 keyed by SECRET_KEY: a stolen table alone cannot be brute-forced offline."""
    key = hashlib.sha256(f"portal-{purpose}-hmac:".encode() + current_app.config["SECRET_KEY"].encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).digest()
