"""Exports of the viewer's current filter: CSV and JSON Lines, streamed newest first through a
server-side cursor, so a million rows take the memory of one batch."""
from __future__ import annotations

import csv
import io
import json
from typing import Iterator
from uuid import UUID

from ..audit.chain import timestamp
from .describe import Names, actor_name, sentence
from .queries import AuditFilter, stream

FORMATS = {"csv": ("text/csv", "csv"), "jsonl": ("application/jsonl", "jsonl")}
COLUMNS = ("seq", "created_at", "actor_id", "actor", "actor_email", "action", "summary", "resource_type",
           "resource_id", "before", "after", "details", "ip_address", "user_agent", "request_id", "row_hash")
# A cell starting with one of these is a formula to a spreadsheet: written with a leading
# apostrophe (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FLUSH_EVERY = 500


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _record(row, names: Names) -> dict:
    return {"seq": row.seq, "created_at": timestamp(row.created_at),
            "actor_id": str(row.user_id) if row.user_id else None, "actor": actor_name(row),
            "actor_email": row.actor_email, "action": row.action, "summary": sentence(row, names),
            "resource_type": row.resource_type, "resource_id": row.resource_id, "before": row.before,
            "after": row.after, "details": row.details,
            "ip_address": str(row.ip_address) if row.ip_address is not None else None,
            "user_agent": row.user_agent, "request_id": row.request_id, "row_hash": bytes(row.row_hash).hex()}


def _cell(value) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else (_json(value) if isinstance(value, (dict, list)) else str(value))
    return "'" + text if text.startswith(FORMULA_START) else text


def lines(tenant_id: UUID, f: AuditFilter, fmt: str) -> Iterator[str]:
    names = Names.all_sites(tenant_id)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for n, row in enumerate(stream(tenant_id, f), 1):
            record = _record(row, names)
            writer.writerow([_cell(record[c]) for c in COLUMNS])
            if n % FLUSH_EVERY == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()
        return
    chunk: list[str] = []
    for row in stream(tenant_id, f):
        chunk.append(_json(_record(row, names)) + "\n")
        if len(chunk) == FLUSH_EVERY:
            yield "".join(chunk)
            chunk = []
    yield "".join(chunk)
