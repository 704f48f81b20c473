"""CSV export (streamed) and import (validated whole, all-or-nothing by default).

Export and import share one format, so an export can be edited and imported elsewhere:
name, type, serial_number, status, site (by name), firmware_version, last_seen_at
(ISO 8601), metadata (a JSON object).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import SimpleNamespace
from uuid import uuid4

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from .. import audit
from ..analytics.events import device_status_changed
from ..extensions import db
from ..jsondata import JsonValueError, parse_object
from ..rules import RuleViolation
from ..sites.models import Site
from ..sites.visibility import may_see
from ..tenancy import TenantContext
from .models import Device, DeviceStatus, DeviceType
from .queries import ListState, iter_devices
from .services import room_for_devices, snapshot

COLUMNS = ("name", "type", "serial_number", "status", "site", "firmware_version", "last_seen_at", "metadata")
REQUIRED = ("name", "type", "serial_number", "site")
MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 10_000
# A cell starting with one of these is a formula to a spreadsheet: exported with a leading
# apostrophe (OWASP "CSV injection"), which the import takes off again.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _uncell(text: str) -> str:
    text = text.strip()
    return text[1:] if text.startswith("'") and text[1:2] in FORMULA_START and text[1:2] else text


EXPORT_COLUMNS = (Device.id, Device.name, Device.type, Device.serial_number, Device.status,
                  Device.firmware_version, Device.last_seen_at, Device.meta, Device.name_key, Device.last_seen_key)


def export_lines(ctx: TenantContext, state: ListState):
    """The CSV of a filtered list, line by line, reading the devices in keyset batches."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")

    def flush() -> str:
        text = out.getvalue()
        out.seek(0)
        out.truncate()
        return text

    writer.writerow(COLUMNS)
    yield flush()
    for n, row in enumerate(iter_devices(ctx, state, EXPORT_COLUMNS), 1):
        seen = row.last_seen_at.astimezone(timezone.utc).isoformat() if row.last_seen_at else ""
        writer.writerow([_cell(row.name), DeviceType(row.type).value, _cell(row.serial_number),
                         DeviceStatus(row.status).value, _cell(row.site_name), _cell(row.firmware_version), seen,
                         json.dumps(row.meta, separators=(",", ":"), sort_keys=True) if row.meta else ""])
        if n % 500 == 0:
            yield flush()
    yield flush()


@dataclass
class Rejection:
    line: int
    reason: str


@dataclass
class ImportReport:
    problems: list[str] = field(default_factory=list)  # the file as a whole
    rejected: list[Rejection] = field(default_factory=list)
    rows: int = 0
    imported: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.rejected


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{max(1, round(n / 1024))} KB"


def read_csv(data: bytes, report: ImportReport) -> list[tuple[int, dict[str, str]]]:
    """(line, row) pairs, or nothing with the file's problems in the report."""
    if len(data) > MAX_BYTES:
        report.problems.append(f"The file is {_size(len(data))}; the limit is {_size(MAX_BYTES)}. "
                               "Split it into smaller files.")
        return []
    if not data.strip():
        report.problems.append("The file is empty.")
        return []
    if b"\x00" in data:
        report.problems.append("This is not a CSV file: it contains binary data.")
        return []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        report.problems.append(f"The file is not UTF-8 text (line {line}). Save it as “CSV UTF-8”.")
        return []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        header = next(reader, [])
        names = [h.strip().lower().replace(" ", "_") for h in header]
        unknown = [h for h in names if h not in COLUMNS]
        missing = [c for c in REQUIRED if c not in names]
        repeated = sorted({h for h in names if names.count(h) > 1})
        if unknown or missing or repeated:
            parts = []
            if unknown:
                parts.append("unknown column" + ("s " if len(unknown) > 1 else " ") + ", ".join(unknown or ["(empty)"]))
            if missing:
                parts.append("missing column" + ("s " if len(missing) > 1 else " ") + ", ".join(missing))
            if repeated:
                parts.append("repeated column" + ("s " if len(repeated) > 1 else " ") + ", ".join(repeated))
            report.problems.append(f"Wrong columns in line 1: {'; '.join(parts)}. "
                                   f"The columns are {', '.join(COLUMNS)} ({', '.join(REQUIRED)} required).")
            return []
        start = reader.line_num + 1
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue  # blank lines
            if len(rows) == MAX_ROWS:
                report.problems.append(f"The file has more than {MAX_ROWS:,} devices. Split it into smaller files.")
                return []
            if len(record) != len(names):
                report.rejected.append(Rejection(line, f"has {len(record)} fields, expected {len(names)}"))
                rows.append((line, {}))
                continue
            rows.append((line, dict(zip(names, record))))
    except csv.Error as exc:
        report.problems.append(f"This is not a well-formed CSV file (line {reader.line_num}: {exc}).")
        return []
    report.rows = len(rows)
    if not rows:
        report.problems.append("The file has a header but no devices.")
    return rows


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _device(row: dict[str, str], sites: dict[str, Site], seen: dict[str, int], line: int) -> tuple[dict | None, str]:
    """The device a row describes, or None and the reason it is rejected."""
    name, serial = _uncell(row["name"]), _uncell(row["serial_number"])
    if not name:
        return None, "name is empty"
    if len(name) > 200:
        return None, "name is longer than 200 characters"
    if not serial:
        return None, "serial_number is empty"
    if len(serial) > 100:
        return None, "serial_number is longer than 100 characters"
    if serial.lower() in seen:
        return None, f"serial number {serial} repeats line {seen[serial.lower()]}"
    seen[serial.lower()] = line
    try:
        kind = DeviceType(row["type"].strip().lower())
    except ValueError:
        return None, f"type “{row['type'].strip()}” is not one of {', '.join(t.value for t in DeviceType)}"
    try:
        status = DeviceStatus((row.get("status") or "offline").strip().lower() or "offline")
    except ValueError:
        return None, f"status “{row['status'].strip()}” is not one of {', '.join(s.value for s in DeviceStatus)}"
    site = sites.get(_uncell(row["site"]).lower())
    if site is None:
        return None, f"site “{_uncell(row['site'])}” is not one of your sites" if row["site"].strip() else "site is empty"
    if site.archived_at is not None:
        return None, f"site {site.name} is archived"
    firmware = _uncell(row.get("firmware_version") or "") or None
    if firmware and len(firmware) > 64:
        return None, "firmware_version is longer than 64 characters"
    last_seen = None
    if (row.get("last_seen_at") or "").strip():
        try:
            last_seen = _parse_time(row["last_seen_at"].strip())
        except ValueError:
            return None, f"last_seen_at “{row['last_seen_at'].strip()}” is not an ISO 8601 time (2026-01-31T08:00:00Z)"
    meta = {}
    if (row.get("metadata") or "").strip():
        try:
            meta = parse_object(row["metadata"])
        except JsonValueError as exc:
            return None, f"metadata {exc}"
    return {"name": name, "type": kind, "serial_number": serial, "status": status, "site_id": site.id,
            "firmware_version": firmware, "last_seen_at": last_seen, "meta": meta}, ""


def import_devices(ctx: TenantContext, data: bytes, *, partial: bool = False) -> ImportReport:
    """Create the devices of a CSV file. Nothing is written unless every row is valid,
    or, with `partial`, the valid rows are written and the others reported."""
    report = ImportReport()
    rows = read_csv(data, report)
    if report.problems:
        return report
    sites = {s.name.lower(): s for s in db.session.scalars(
        select(Site).where(Site.tenant_id == ctx.tenant_id, may_see(ctx, Site.id)))}
    seen: dict[str, int] = {}
    candidates: list[tuple[int, dict]] = []
    rejected_lines = {r.line for r in report.rejected}
    for line, row in rows:
        if line in rejected_lines:
            continue
        device, reason = _device(row, sites, seen, line)
        if device is None:
            report.rejected.append(Rejection(line, reason))
        else:
            candidates.append((line, device))
    keys = [d["serial_number"].lower() for _, d in candidates]
    taken = set(db.session.scalars(select(Device.serial_key).where(
        Device.tenant_id == ctx.tenant_id, Device.serial_key.in_(keys)))) if keys else set()
    valid = []
    for line, device in candidates:
        if device["serial_number"].lower() in taken:
            report.rejected.append(Rejection(line, f"a device with serial number {device['serial_number']} "
                                                   "already exists"))
        else:
            valid.append(device)
    report.rejected.sort(key=lambda r: r.line)
    if (report.rejected and not partial) or not valid:
        return report
    try:  # the whole file is counted before anything is written
        room_for_devices(ctx, sum(1 for d in valid if d["status"] != DeviceStatus.DECOMMISSIONED))
    except RuleViolation as exc:
        report.problems.append(exc.message + " Nothing was imported.")
        return report
    # Ids made here rather than by the database: with nothing to read back, the devices (and
    # their audit rows) go in as one executemany, which psycopg pipelines, instead of one
    # round trip per row.
    rows = [{"tenant_id": ctx.tenant_id, "id": uuid4(), **d} for d in valid]
    try:
        with db.session.begin_nested():  # a serial taken meanwhile undoes this import only
            db.session.execute(insert(Device.__table__), [_columns(row) for row in rows])
    except IntegrityError:
        report.problems.append("Another change created some of these serial numbers meanwhile; nothing was "
                               "imported. Try again.")
        return report
    audit.record_many(ctx.tenant_id, ctx.user_id, "device.import", "device",
                      [(row["id"], None, snapshot(SimpleNamespace(**row))) for row in rows])
    device_status_changed(ctx, [(SimpleNamespace(**row), None) for row in rows])  # one statement
    report.imported = len(rows)
    return report


def _columns(row: dict) -> dict:
    """Attribute names to column names (`meta` is the `metadata` column)."""
    return {("metadata" if k == "meta" else k): v for k, v in row.items()}
