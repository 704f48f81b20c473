"""Client secrets and access tokens: made with `secrets`, stored as SHA-256 hashes.

Why a fast hash and not argon2id: these are 256-bit random values, not passwords a person
chose. Guessing one from its hash means searching 2^256 values, so a slow hash adds nothing
but CPU time on every token request and every API call (a token is checked per request). A
key (HMAC) would tie every stored credential to SECRET_KEY, so rotating that key would
silently break every client; a plain SHA-256 with a domain prefix keeps them independent.
The prefixes (`pcs_`, `pat_`) let secret scanners recognise a leaked credential.
"""
from __future__ import annotations

import hashlib
import secrets

SECRET_PREFIX = "pcs_"
TOKEN_PREFIX = "pat_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(b"portal-api-client-secret\x00" + secret.encode()).digest()


def token_hash(token: str) -> bytes:
    return hashlib.sha256(b"portal-api-access-token\x00" + token.encode()).digest()


# Authorization codes and refresh tokens of apps (api/grants.py): the same kind of random values.
CODE_PREFIX = "pac_"
REFRESH_PREFIX = "prt_"


def new_code() -> str:
    return CODE_PREFIX + secrets.token_urlsafe(32)


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def code_hash(code: str) -> bytes:
    return hashlib.sha256(b"portal-oauth-code\x00" + code.encode()).digest()


def refresh_hash(token: str) -> bytes:
    return hashlib.sha256(b"portal-oauth-refresh-token\x00" + token.encode()).digest()
