"""The connection's client secret, sealed at rest: the one place that says how.

portal.keys (the keyring: per-tenant data keys, AES-GCM, the row bound into the associated data)
when it is installed; until that branch lands, the installation's key through crypto.fernet.
Either way the secret is written once and only unsealed to talk to the provider."""
from __future__ import annotations

from uuid import UUID

TABLE, COLUMN = "sso_connections", "client_secret"

try:  # pragma: no cover - which branch is present decides
    from .. import keys as _keys
except ImportError:  # the keyring has not landed yet
    _keys = None
else:
    _keys.register(TABLE, COLUMN)


class Unreadable(ValueError):
    """The stored secret cannot be decrypted (moved row, shredded key): enter it again."""


def seal(secret: str, *, tenant_id: UUID, row_id: UUID) -> bytes:
    if _keys is not None:
        return _keys.seal(secret.encode(), tenant_id=tenant_id, table=TABLE, row_id=row_id, column=COLUMN)
    from ..crypto import fernet
    return fernet(f"{TABLE}:{tenant_id}:{row_id}").encrypt(secret.encode())


def unseal(sealed: bytes, *, tenant_id: UUID, row_id: UUID) -> str:
    try:
        if _keys is not None:
            return _keys.unseal(sealed, tenant_id=tenant_id, table=TABLE, row_id=row_id, column=COLUMN).decode()
        from cryptography.fernet import InvalidToken

        from ..crypto import fernet
        try:
            return fernet(f"{TABLE}:{tenant_id}:{row_id}").decrypt(bytes(sealed)).decode()
        except InvalidToken as exc:
            raise Unreadable(str(exc)) from exc
    except ValueError as exc:  # keys.Unreadable is a ValueError
        raise Unreadable("The stored client secret cannot be read: enter it again.") from exc
