"""Rotation and the keyring's report: master keys re-wrap data keys; a data key rotation makes a new
version and re-seals its owner's values in batches (the job worker), then retires the old versions.

No downtime: while a rotation runs, both versions are live (values name the version that sealed
them; new values take the newest). Retiring waits, by a row lock, for every transaction still
sealing with an old version (keyring._current takes it FOR SHARE), re-seals what they wrote, then
drops the old wrapped keys in the same transaction.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import text

from .. import audit
from ..database.context import tenant_scope
from ..extensions import db
from . import cipher, keyring
from .cipher import Unreadable
from .keyring import REGISTRY, Sealed

BATCH = 500


def _scope(tenant_id):
    return nullcontext() if tenant_id is None else tenant_scope(db.session, tenant_id, actor="keys:rotate")


def _keys_table(tenant_id) -> tuple[str, str, dict]:
    if tenant_id is None:
        return "installation_keys", "true", {}
    return "tenant_keys", "tenant_id = :t", {"t": tenant_id}


def tenant_ids() -> list[UUID]:
    ids = list(db.session.scalars(text("SELECT id FROM tenants ORDER BY created_at, id")))
    db.session.rollback()
    return ids


def owners() -> list[UUID | None]:
    """Whose data keys exist: the installation (None), then every tenant."""
    return [None, *tenant_ids()]


# --- master keys -------------------------------------------------------------------------------

def rotate_master() -> dict:
    """Re-wrap every live data key under the newest master key, one owner per transaction.
    {"rewrapped": n, "current": n, "unreadable": [...]} (a key whose master key is not configured)."""
    newest_id, newest = keyring.master_keys()[0]
    counts = {"rewrapped": 0, "current": 0, "unreadable": []}
    for owner in owners():
        table, where, params = _keys_table(owner)
        with _scope(owner):
            rows = db.session.execute(text(
                f"SELECT version, wrapped_key, master_key_id FROM {table} WHERE {where} AND wrapped_key IS NOT NULL "
                "FOR UPDATE"), params).all()
            for row in rows:
                if row.master_key_id == newest_id:
                    counts["current"] += 1
                    continue
                try:
                    key = keyring._unwrapped(owner, row.version, row.wrapped_key, row.master_key_id)
                except Unreadable as exc:
                    counts["unreadable"].append(str(exc))
                    continue
                db.session.execute(text(
                    f"UPDATE {table} SET wrapped_key = :w, master_key_id = :m WHERE {where} AND version = :v"),
                    {**params, "v": row.version, "m": newest_id,
                     "w": cipher.wrap(newest, key, tenant_id=owner, version=row.version)})
                counts["rewrapped"] += 1
            db.session.commit()
    return counts


# --- data keys ---------------------------------------------------------------------------------

def _live_versions(tenant_id) -> list[int]:
    table, where, params = _keys_table(tenant_id)
    with _scope(tenant_id):
        return list(db.session.scalars(text(
            f"SELECT version FROM {table} WHERE {where} AND retired_at IS NULL ORDER BY version"), params))


def start(tenant_id: UUID | None) -> tuple[int, bool]:
    """A new data key version for the tenant (None: the installation) and the job that re-seals its
    values; (version, resumed). A rotation already under way is resumed, not stacked. The caller commits."""
    from ..jobs.engine import defer
    live = _live_versions(tenant_id)
    resumed = len(live) > 1
    if resumed:
        version = live[-1]
    else:
        version = _next_version(tenant_id)
        keyring._new_key_row(tenant_id, version)
        if tenant_id is not None:
            with _scope(tenant_id):
                audit.record(tenant_id, None, "keys.rotate", "tenant", tenant_id, after={"version": version})
    defer("keys.reseal", tenant_id=str(tenant_id) if tenant_id else "")
    return version, resumed


def _next_version(tenant_id) -> int:
    table, where, params = _keys_table(tenant_id)
    with _scope(tenant_id):
        return (db.session.scalar(text(f"SELECT max(version) FROM {table} WHERE {where}"), params) or 0) + 1


def columns_of(tenant_id) -> list[Sealed]:
    return [s for s in REGISTRY.values() if (s.tenant_column is None) == (tenant_id is None)]


def _batch(entry: Sealed, tenant_id, current: int, after, limit: int | None, *, wait: bool) -> list:
    """Values not sealed with `current`, in id order after `after` (keyset: each row is read once)."""
    owner = f"{entry.tenant_column} = :t AND " if entry.tenant_column else ""
    return db.session.execute(text(
        f"SELECT {entry.id_column} AS id, {entry.column} AS value FROM {entry.table} "
        f"WHERE {owner}{entry.column} IS NOT NULL AND substring({entry.column} from 2 for 4) <> :v "
        + (f"AND {entry.id_column} > :after " if after is not None else "")
        + f"ORDER BY {entry.id_column} " + ("LIMIT :n " if limit else "")
        + ("FOR UPDATE" if wait else "FOR UPDATE SKIP LOCKED")),
        {"t": tenant_id, "v": cipher.version_bytes(current), "after": after, "n": limit}).all()


def _reseal(entry: Sealed, tenant_id, rows, version: int, key: bytes) -> tuple[int, int]:
    """Re-seal `rows` with data key `version`; (re-sealed, unreadable). One executemany per batch."""
    unreadable, updates = 0, []
    owner = f"{entry.tenant_column} = :t AND " if entry.tenant_column else ""
    for row in rows:
        where = {"tenant_id": tenant_id, "table": entry.table, "column": entry.column, "row_id": row.id}
        try:
            plain = keyring.unseal(bytes(row.value), **where)
        except Unreadable:
            unreadable += 1  # already unreadable: nothing to carry over
            continue
        updates.append({"t": tenant_id, "id": row.id, "value": cipher.encrypt(key, version, plain, **where)})
    if updates:
        db.session.execute(text(f"UPDATE {entry.table} SET {entry.column} = :value "
                                f"WHERE {owner}{entry.id_column} = :id"), updates)
    done = len(updates)
    return done, unreadable


@dataclass
class Resealed:
    version: int
    resealed: int = 0
    unreadable: int = 0
    retired: list[int] = field(default_factory=list)


def reseal(tenant_id: UUID | None, *, batch: int = BATCH) -> Resealed:
    """Re-seal the owner's values with its newest data key, `batch` rows per transaction, then retire
    the older versions. Safe to run again (a lost worker's job is re-run from where it stopped)."""
    live = _live_versions(tenant_id)
    db.session.commit()
    if not live:
        return Resealed(0)
    result = Resealed(live[-1])
    for entry in columns_of(tenant_id):
        after = None
        while True:
            with _scope(tenant_id):
                rows = _batch(entry, tenant_id, result.version, after, batch, wait=False)
                if not rows:
                    db.session.rollback()
                    break
                version, key = keyring._current(tenant_id)
                done, unreadable = _reseal(entry, tenant_id, rows, version, key)
                result.resealed += done
                db.session.commit()
                after = rows[-1].id
    # Retire: the old versions' rows locked FOR UPDATE wait for every transaction still sealing with
    # them; then what those wrote (and rows skipped while locked) is re-sealed and the old keys
    # dropped, in this one transaction.
    table, where, params = _keys_table(tenant_id)
    with _scope(tenant_id):
        old = list(db.session.scalars(text(
            f"SELECT version FROM {table} WHERE {where} AND version < :v AND retired_at IS NULL FOR UPDATE"),
            {**params, "v": result.version}))
        version, key = keyring._current(tenant_id)
        for entry in columns_of(tenant_id):
            done, unreadable = _reseal(entry, tenant_id, _batch(entry, tenant_id, result.version, None, None, wait=True),
                                       version, key)
            result.resealed += done
            result.unreadable += unreadable
        if old:
            db.session.execute(text(
                f"UPDATE {table} SET wrapped_key = NULL, retired_at = now() WHERE {where} AND version = ANY(:old)"),
                {**params, "old": old})
            if tenant_id is not None:
                audit.record(tenant_id, None, "keys.rotated", "tenant", tenant_id,
                             after={"version": result.version, "retired": old, "resealed": result.resealed})
        db.session.commit()
    result.retired = old
    keyring.forget(tenant_id)
    return result


# --- status ------------------------------------------------------------------------------------

@dataclass
class Status:
    masters: list[dict]                 # [{"id", "newest", "wraps": n}]
    unknown_masters: dict[str, int]     # master key ids wrapping live keys but not configured
    keys: dict[str, list[dict]]         # owner label -> [{"version", "master", "retired"}]
    columns: dict[str, dict[int, int]]  # "table.column" -> {version: rows} (0: not sealed here)
    rotating: list[str]                 # owners with more than one live version
    shreds_pending: list[dict]          # purged tenants whose keys old backups still hold


def status(slug: str | None = None) -> Status:
    configured = [kid for kid, _ in keyring.master_keys()]
    wraps: dict[str, int] = {}
    key_rows: dict[str, list[dict]] = {}
    columns: dict[str, dict[int, int]] = {s.name: {} for s in REGISTRY.values()}
    rotating = []
    targets: list[tuple[UUID | None, str]] = [(None, "installation")]
    for tenant_id, tenant_slug in db.session.execute(text("SELECT id, slug FROM tenants ORDER BY slug")).all():
        if slug is None or slug == tenant_slug:
            targets.append((tenant_id, tenant_slug))
    for owner, label in targets:
        table, where, params = _keys_table(owner)
        with _scope(owner):
            rows = db.session.execute(text(
                f"SELECT version, master_key_id, retired_at FROM {table} WHERE {where} ORDER BY version"), params).all()
            key_rows[label] = [{"version": r.version, "master": r.master_key_id, "retired": r.retired_at}
                               for r in rows]
            for r in rows:
                if r.retired_at is None:
                    wraps[r.master_key_id] = wraps.get(r.master_key_id, 0) + 1
            if sum(1 for r in rows if r.retired_at is None) > 1:
                rotating.append(label)
            for entry in columns_of(owner):
                owner_sql = f"{entry.tenant_column} = :t AND " if entry.tenant_column else ""
                for version, count in db.session.execute(text(
                        f"SELECT CASE WHEN substring({entry.column} from 1 for 1) = :f "
                        f"THEN get_byte({entry.column}, 1) * 16777216 + get_byte({entry.column}, 2) * 65536 "
                        f"+ get_byte({entry.column}, 3) * 256 + get_byte({entry.column}, 4) ELSE 0 END, count(*) "
                        f"FROM {entry.table} WHERE {owner_sql}{entry.column} IS NOT NULL GROUP BY 1"),
                        {"t": owner, "f": cipher.FORMAT}).all():
                    counts = columns[entry.name]
                    counts[version] = counts.get(version, 0) + count
        db.session.commit()
    shreds = [{"slug": s.slug, "shredded_at": s.shredded_at, "masters": [m for m in s.master_key_ids if m in configured]}
              for s in db.session.execute(text(
                  "SELECT slug, shredded_at, master_key_ids FROM key_shreds ORDER BY shredded_at")).all()]
    db.session.rollback()
    return Status(masters=[{"id": kid, "newest": i == 0, "wraps": wraps.get(kid, 0)} for i, kid in enumerate(configured)],
                  unknown_masters={k: v for k, v in wraps.items() if k not in configured},
                  keys=key_rows, columns=columns, rotating=rotating,
                  shreds_pending=[s for s in shreds if s["masters"]])


# --- restoring a backup ------------------------------------------------------------------------

def adopt(source_url: str) -> dict:
    """Bring this database's data keys up to date from another database of the same installation
    (the live one, when this one is a restored backup): every key row of a tenant that exists here
    takes the source's wrapping (newest master key) and retirement. A tenant purged since the backup
    has no row in the source: its keys stay wrapped by the retired master key, unreadable.
    `source_url` must read every tenant's keys (the owner role's URL, MIGRATION_DATABASE_URL)."""
    import sqlalchemy as sa
    from ..config import _sqlalchemy_url
    engine = sa.create_engine(_sqlalchemy_url(source_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            tenant_rows = conn.execute(text("SELECT tenant_id, version, wrapped_key, master_key_id, retired_at "
                                            "FROM tenant_keys")).all()
            installation_rows = conn.execute(text("SELECT version, wrapped_key, master_key_id, retired_at "
                                                  "FROM installation_keys")).all()
    finally:
        engine.dispose()
    here = set(tenant_ids())
    counts = {"tenant_keys": 0, "installation_keys": 0, "skipped": 0}
    upsert = ("INSERT INTO {table} ({cols}version, wrapped_key, master_key_id, retired_at) "
              "VALUES ({vals}:v, :w, :m, :r) ON CONFLICT ({key}version) DO UPDATE SET wrapped_key = EXCLUDED.wrapped_key, "
              "master_key_id = EXCLUDED.master_key_id, retired_at = EXCLUDED.retired_at")
    for row in tenant_rows:
        if row.tenant_id not in here:
            counts["skipped"] += 1
            continue
        with tenant_scope(db.session, row.tenant_id, actor="cli:keys.adopt"):
            db.session.execute(text(upsert.format(table="tenant_keys", cols="tenant_id, ", vals=":t, ",
                                                  key="tenant_id, ")),
                               {"t": row.tenant_id, "v": row.version, "w": row.wrapped_key, "m": row.master_key_id,
                                "r": row.retired_at})
        counts["tenant_keys"] += 1
    for row in installation_rows:
        db.session.execute(text(upsert.format(table="installation_keys", cols="", vals="", key="")),
                           {"v": row.version, "w": row.wrapped_key, "m": row.master_key_id, "r": row.retired_at})
        counts["installation_keys"] += 1
    db.session.commit()
    keyring.forget()
    return counts
