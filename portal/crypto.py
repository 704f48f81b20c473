"""A key derived from SECRET_KEY, for data that lives no longer than the sessions SECRET_KEY signs
(the secret shown once after POST-redirect-GET, portal/ui.py). Nothing stored in the database uses
it: stored secrets are sealed with the keyring (portal/keys), so rotating SECRET_KEY only ends
sessions. Infrastructure, like config: any area may use it."""
from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet
from flask import current_app


def fernet(purpose: str) -> Fernet:
    key = hashlib.sha256(f"portal-{purpose}:".encode() + current_app.config["SECRET_KEY"].encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))
