"""The keyring: data keys looked up (and made) in the database, unwrapped with the configured master
keys, and the sealing of values with them.

Where the keys live, and RLS: a tenant's data keys are rows of `tenant_keys`, a tenant table under
forced RLS like any other; the lookup enters that tenant's scope for its one statement (a request
already in the tenant stays as it is), so the worker and the CLI read a tenant's key the way they
read its other rows, and no SQL door reads every tenant's key. Reading a wrapped key is not enough:
it takes a master key, which only the portal's processes hold (PORTAL_MASTER_KEYS), never the
database or its backups. The installation's own key (`installation_keys`) is not a tenant's.

Unwrapped keys are kept in memory for KEY_CACHE_SECONDS only, so a purged tenant's key leaves every
process soon; sealing always reads the tenant's current version (a rotation is seen at once).
"""
from __future__ import annotations

import hashlib
import hmac
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from uuid import UUID

from flask import current_app, g
from sqlalchemy import text

from ..config import ConfigError
from ..database.context import tenant_scope
from ..extensions import db
from . import cipher
from .cipher import Unreadable

KEY_CACHE_SECONDS = 60


@dataclass(frozen=True)
class Sealed:
    """A column holding sealed values, for `flask keys status` and rotation."""
    table: str
    column: str
    tenant_column: str | None
    id_column: str

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


REGISTRY: dict[str, Sealed] = {}


def register(table: str, column: str, *, tenant_column: str | None = "tenant_id", id_column: str = "id") -> None:
    """Declare a sealed column (areas call it at import). `tenant_column=None`: the installation's own
    values, sealed with tenant_id None."""
    entry = Sealed(table, column, tenant_column, id_column)
    REGISTRY[entry.name] = entry


@dataclass
class _State:
    masters: list[tuple[str, bytes]]
    cache: dict = field(default_factory=dict)  # (tenant_id, version) -> (key, expires)


def _state() -> _State:
    state = current_app.extensions.get("keys")
    if state is None:
        try:
            masters = cipher.parse_master_keys(current_app.config.get("PORTAL_MASTER_KEYS") or "")
        except cipher.MasterKeyError as exc:
            raise ConfigError(str(exc)) from None
        state = current_app.extensions["keys"] = _State(masters)
    return state


def master_keys() -> list[tuple[str, bytes]]:
    """[(id, key)] as configured, newest first."""
    return _state().masters


def _master(key_id: str | None) -> bytes:
    for kid, key in master_keys():
        if kid == key_id:
            return key
    raise Unreadable(f"master key {key_id} is not in PORTAL_MASTER_KEYS (retired, or shredded)")


def forget(tenant_id=None) -> None:
    """Drop cached keys (of one tenant, or all): after a purge or a retirement."""
    cache = _state().cache
    for key in [k for k in cache if tenant_id is None or k[0] == str(tenant_id)]:
        cache.pop(key, None)


def _scope(tenant_id):
    """The tenant's RLS scope for a key lookup; nothing to enter when already in it. No actor: it
    reads, and writes only its own key rows (tenant_keys carries no permission policy)."""
    if tenant_id is None or g.get("db_tenant_id", "") == str(tenant_id):
        return nullcontext()
    return tenant_scope(db.session, tenant_id, actor=None)


_KEY_ROW = {
    True: "SELECT version, wrapped_key, master_key_id FROM tenant_keys WHERE tenant_id = :t",
    False: "SELECT version, wrapped_key, master_key_id FROM installation_keys WHERE true",
}


def _unwrapped(tenant_id, version: int, wrapped, master_key_id) -> bytes:
    if wrapped is None:
        raise Unreadable(f"data key {version} of {tenant_id or 'the installation'} was retired")
    return cipher.unwrap(_master(master_key_id), bytes(wrapped), tenant_id=tenant_id, version=version)


def _data_key(tenant_id, version: int) -> bytes:
    cache, now = _state().cache, time.monotonic()
    hit = cache.get((str(tenant_id), version))
    if hit and hit[1] > now:
        return hit[0]
    with _scope(tenant_id):
        row = db.session.execute(text(_KEY_ROW[tenant_id is not None] + " AND version = :v"),
                                 {"t": tenant_id, "v": version}).first()
    if row is None:
        raise Unreadable(f"no data key {version} for {tenant_id or 'the installation'} (shredded?)")
    key = _unwrapped(tenant_id, version, row.wrapped_key, row.master_key_id)
    cache[(str(tenant_id), version)] = (key, now + KEY_CACHE_SECONDS)
    return key


def _new_key_row(tenant_id, version: int) -> None:
    """A new data key `version`, wrapped by the newest master key (no-op if the version exists)."""
    kid, master = master_keys()[0]
    wrapped = cipher.wrap(master, cipher.new_key(), tenant_id=tenant_id, version=version)
    table, cols = (("tenant_keys", "tenant_id, ") if tenant_id is not None else ("installation_keys", ""))
    with _scope(tenant_id):
        db.session.execute(text(
            f"INSERT INTO {table} ({cols}version, wrapped_key, master_key_id) "
            f"VALUES ({':t, ' if tenant_id is not None else ''}:v, :w, :m) ON CONFLICT DO NOTHING"),
            {"t": tenant_id, "v": version, "w": wrapped, "m": kid})


def create_tenant_key(tenant_id: UUID) -> None:
    """The tenant's first data key: called when a tenant is created (sealing also makes it if missing)."""
    _new_key_row(tenant_id, 1)


def _current(tenant_id) -> tuple[int, bytes]:
    """The newest live version and its key. FOR SHARE: a rotation retires an older version only once
    no transaction that sealed with it is still open (keys.rotation)."""
    sql = _KEY_ROW[tenant_id is not None] + " AND retired_at IS NULL ORDER BY version DESC LIMIT 1 FOR SHARE"
    with _scope(tenant_id):
        row = db.session.execute(text(sql), {"t": tenant_id}).first()
        if row is None:
            _new_key_row(tenant_id, 1)
            row = db.session.execute(text(sql), {"t": tenant_id}).first()
    if row is None:
        raise Unreadable(f"{tenant_id or 'the installation'} has no live data key")
    return row.version, _unwrapped(tenant_id, row.version, row.wrapped_key, row.master_key_id)


def seal(plaintext: bytes, *, tenant_id: UUID | None, table: str, row_id, column: str = "") -> bytes:
    """`plaintext` encrypted with the current data key of `tenant_id` (None: the installation's),
    bound to where it is stored. Call it inside the transaction that stores the value."""
    version, key = _current(tenant_id)
    return cipher.encrypt(key, version, plaintext, tenant_id=tenant_id, table=table, column=column, row_id=row_id)


def unseal(ciphertext: bytes, *, tenant_id: UUID | None, table: str, row_id, column: str = "") -> bytes:
    """The plaintext of a sealed value; raises Unreadable if it was moved, altered, or its key is gone."""
    if ciphertext is None:
        raise Unreadable("no value")
    version = cipher.version_of(ciphertext)
    return cipher.decrypt(_data_key(tenant_id, version), ciphertext, tenant_id=tenant_id, table=table,
                          column=column, row_id=row_id)


def installation_secret(name: str) -> bytes:
    """A named 32-byte secret of the installation, made on first use, stored sealed."""
    row = db.session.execute(text("SELECT value FROM installation_secrets WHERE name = :n"), {"n": name}).first()
    if row is None:
        value = cipher.new_key()
        db.session.execute(text("INSERT INTO installation_secrets (name, value) VALUES (:n, :v) "
                                "ON CONFLICT DO NOTHING"),
                           {"n": name, "v": seal(value, tenant_id=None, table="installation_secrets",
                                                 column="value", row_id=name)})
        row = db.session.execute(text("SELECT value FROM installation_secrets WHERE name = :n"), {"n": name}).first()
    return unseal(row.value, tenant_id=None, table="installation_secrets", column="value", row_id=name)


def lookup_hash(purpose: str, value: str) -> bytes:
    """HMAC-SHA256 of `value` under the installation secret `purpose`-hmac: a stolen table alone
    cannot be brute-forced offline, and the key survives a SECRET_KEY rotation."""
    return hmac.new(installation_secret(f"{purpose}-hmac"), value.encode(), hashlib.sha256).digest()


register("installation_secrets", "value", tenant_column=None, id_column="name")
