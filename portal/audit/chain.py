"""The hash chain over each tenant's audit rows, recomputed here independently of the SQL
that writes it (migration 0008, `audit_canonical` and `audit_append`).

Canonical content, version "portal-audit-v1": these fields, in this order, each encoded as
`<length in UTF-8 bytes>:<value>\\n`, and NULL as `-\\n`:

    "portal-audit-v1", tenant_id, seq, id, created_at, user_id, action, resource_type,
    resource_id, before, after, details, ip_address, user_agent, request_id

UUIDs in lowercase hyphenated form; seq in decimal; created_at in UTC as
`YYYY-MM-DDTHH:MM:SS.ffffffZ`; before/after/details as PostgreSQL prints jsonb (keys
sorted by length then bytes, `", "` and `": "` separators, so the same value always prints
the same); ip_address as PostgreSQL prints inet (`203.0.113.9/32`).

    row_hash = SHA-256(prev_hash || canonical content)

prev_hash is the previous row's row_hash (32 zero bytes before a tenant's first row, the
checkpoint's hash after a prune). seq runs 1, 2, 3, ... without gaps from the checkpoint.
So an edited row no longer matches its hash, a deleted row leaves a gap, and an inserted row
must carry a hash that matches both its content and its neighbours.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator
from uuid import UUID

from sqlalchemy import text

from ..extensions import db

VERSION = "portal-audit-v1"
GENESIS = bytes(32)
FIELDS = ("tenant_id", "seq", "id", "created_at", "user_id", "action", "resource_type", "resource_id",
          "before", "after", "details", "ip_address", "user_agent", "request_id")

# Every field as text, exactly as the canonical form wants it (jsonb and inet as PostgreSQL prints them).
_ROWS = text("""
    SELECT tenant_id::text AS tenant_id, seq, id::text AS id, created_at, user_id::text AS user_id, action,
           resource_type, resource_id, before::text AS before, after::text AS after, details::text AS details,
           ip_address::text AS ip_address, user_agent, request_id, prev_hash, row_hash
      FROM audit_logs WHERE tenant_id = :tenant ORDER BY seq""")
_CHECKPOINT = text("SELECT seq, row_hash FROM audit_checkpoints WHERE tenant_id = :tenant")


def _field(value: str | None) -> str:
    return "-\n" if value is None else f"{len(value.encode())}:{value}\n"


def timestamp(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(row) -> bytes:
    values = [VERSION]
    for name in FIELDS:
        value = getattr(row, name)
        if name == "seq":
            value = str(value)
        elif name == "created_at":
            value = timestamp(value)
        values.append(value)
    return "".join(_field(v) for v in values).encode()


def row_hash(prev_hash: bytes, row) -> bytes:
    return hashlib.sha256(prev_hash + canonical(row)).digest()


@dataclass
class Problem:
    seq: int
    id: str | None
    reason: str

    def __str__(self) -> str:
        where = f"row {self.seq}" + (f" (id {self.id})" if self.id else "")
        return f"{where}: {self.reason}"


@dataclass
class Result:
    rows: int
    head_seq: int
    head_hash: bytes
    problem: Problem | None = None


def verify_tenant(tenant_id: UUID, batch: int = 2000) -> Result:
    """Walk one tenant's chain in order (a server-side cursor: constant memory) and stop at the
    first row whose position, link or content does not match. The caller has entered the
    tenant (RLS)."""
    checkpoint = db.session.execute(_CHECKPOINT, {"tenant": tenant_id}).first()
    seq, expected = (checkpoint.seq, bytes(checkpoint.row_hash)) if checkpoint else (0, GENESIS)
    count = 0
    for row in _stream(tenant_id, batch):
        count += 1
        if row.seq != seq + 1:
            reason = (f"the chain jumps from row {seq} to row {row.seq}: row(s) missing" if row.seq > seq + 1
                      else f"row {row.seq} is out of order after row {seq}")
            return Result(count, seq, expected, Problem(row.seq, row.id, reason))
        if bytes(row.prev_hash) != expected:
            return Result(count, seq, expected, Problem(row.seq, row.id,
                          "its link does not match the previous row's hash (a row before it was changed or removed)"))
        actual = row_hash(expected, row)
        if bytes(row.row_hash) != actual:
            return Result(count, seq, expected, Problem(row.seq, row.id,
                          "its content does not match its hash (the row was changed)"))
        seq, expected = row.seq, actual
    return Result(count, seq, expected)


def _stream(tenant_id: UUID, batch: int) -> Iterator:
    result = db.session.execute(_ROWS, {"tenant": tenant_id}, execution_options={"yield_per": batch})
    yield from result
