"""The connection's client secret, sealed at rest by the keyring (portal.keys: the tenant's data
key, AES-GCM bound to tenant, table, column and row): written once, unsealed only to talk to the
provider, never shown again."""
from __future__ import annotations

from uuid import UUID

from .. import keys

TABLE, COLUMN = "sso_connections", "client_secret"
keys.register(TABLE, COLUMN)


class Unreadable(ValueError):
    """The stored secret cannot be decrypted (moved row, shredded key): enter it again."""


def seal(secret: str, *, tenant_id: UUID, row_id: UUID) -> bytes:
    return keys.seal(secret.encode(), tenant_id=tenant_id, table=TABLE, row_id=row_id, column=COLUMN)


def unseal(sealed: bytes, *, tenant_id: UUID, row_id: UUID) -> str:
    try:
        return keys.unseal(bytes(sealed), tenant_id=tenant_id, table=TABLE, row_id=row_id, column=COLUMN).decode()
    except keys.Unreadable as exc:
        raise Unreadable("The stored client secret cannot be read: enter it again.") from exc
