"""The keyring's cryptography, with no database: master keys, wrapping data keys, sealing values.

A sealed value is `FORMAT | version (4 bytes, big-endian) | nonce (12) | AES-256-GCM ciphertext+tag`.
The version names the data key (of its tenant, or of the installation) that sealed it, so rotation
finds old rows with SQL (`substring(col from 2 for 4)`). The associated data binds the value to
where it is stored: tenant, table, column and row id, plus the header; a ciphertext copied to
another row, column or tenant, or a header edited, fails to decrypt.

Data keys are random 32-byte keys, stored only wrapped (AES-GCM) by a master key; a master key's
id is a fingerprint of it, so the environment names keys by value alone.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = b"\x01"
HEADER = 5  # format byte + version
NONCE = 12


class Unreadable(ValueError):
    """A sealed value (or wrapped key) that cannot be decrypted here: moved, tampered with, or its key
    is gone (retired, shredded, or wrapped by a master key no longer configured)."""


class MasterKeyError(ValueError):
    """PORTAL_MASTER_KEYS cannot be used; the message says why."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def key_id(master: bytes) -> str:
    """A master key's public name: 16 hex digits of a hash of it (never enough to guess it)."""
    return hashlib.sha256(b"portal-master-key-id:" + master).hexdigest()[:16]


def parse_master_keys(value: str) -> list[tuple[str, bytes]]:
    """[(id, key), ...] newest first from 'key1,key2' (URL-safe base64 of 32 bytes each)."""
    keys = []
    for position, part in enumerate(p.strip() for p in (value or "").split(",")):
        if not part:
            continue
        try:
            key = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except (binascii.Error, ValueError):
            raise MasterKeyError(f"PORTAL_MASTER_KEYS entry {position + 1} is not base64") from None
        if len(key) != 32:
            raise MasterKeyError(f"PORTAL_MASTER_KEYS entry {position + 1} is {len(key)} bytes, not 32 "
                                 "(make one with: python -c \"import base64,os; "
                                 "print(base64.urlsafe_b64encode(os.urandom(32)).decode())\")")
        keys.append((key_id(key), key))
    if not keys:
        raise MasterKeyError("PORTAL_MASTER_KEYS holds no key")
    if len({kid for kid, _ in keys}) != len(keys):
        raise MasterKeyError("PORTAL_MASTER_KEYS names the same key twice")
    return keys


def _key_ad(tenant_id, version: int) -> bytes:
    return f"portal-data-key|{tenant_id or 'installation'}|{version}".encode()


def wrap(master: bytes, data_key: bytes, *, tenant_id, version: int) -> bytes:
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(master).encrypt(nonce, data_key, _key_ad(tenant_id, version))


def unwrap(master: bytes, wrapped: bytes, *, tenant_id, version: int) -> bytes:
    try:
        return AESGCM(master).decrypt(wrapped[:NONCE], wrapped[NONCE:], _key_ad(tenant_id, version))
    except (InvalidTag, ValueError):
        raise Unreadable(f"data key {version} of {tenant_id or 'the installation'} does not unwrap "
                         "with its master key") from None


def associated_data(header: bytes, *, tenant_id, table: str, column: str, row_id) -> bytes:
    return header + f"|{tenant_id or 'installation'}|{table}|{column}|{row_id}".encode()


def encrypt(data_key: bytes, version: int, plaintext: bytes, *, tenant_id, table: str, column: str,
            row_id) -> bytes:
    header = FORMAT + struct.pack(">I", version)
    nonce = os.urandom(NONCE)
    ad = associated_data(header, tenant_id=tenant_id, table=table, column=column, row_id=row_id)
    return header + nonce + AESGCM(data_key).encrypt(nonce, plaintext, ad)


def version_of(ciphertext: bytes) -> int:
    """The data key version a sealed value names; raises Unreadable for anything not sealed here."""
    ciphertext = bytes(ciphertext or b"")
    if len(ciphertext) < HEADER + NONCE + 16 or ciphertext[:1] != FORMAT:
        raise Unreadable("not a sealed value")
    return struct.unpack(">I", ciphertext[1:HEADER])[0]


def decrypt(data_key: bytes, ciphertext: bytes, *, tenant_id, table: str, column: str, row_id) -> bytes:
    ciphertext = bytes(ciphertext)
    version_of(ciphertext)
    header, nonce, body = ciphertext[:HEADER], ciphertext[HEADER:HEADER + NONCE], ciphertext[HEADER + NONCE:]
    ad = associated_data(header, tenant_id=tenant_id, table=table, column=column, row_id=row_id)
    try:
        return AESGCM(data_key).decrypt(nonce, body, ad)
    except InvalidTag:
        raise Unreadable(f"the value of {table}.{column} {row_id} does not decrypt here "
                         "(moved from another row or tenant, or altered)") from None


def version_bytes(version: int) -> bytes:
    """What `substring(col from 2 for 4)` reads for a value sealed with `version`."""
    return struct.pack(">I", version)
