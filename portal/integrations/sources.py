"""HTTP JSON sources: the worker pulls pages of records and keeps them as analytics events.

A run starts at the integration's cursor (`sync_cursor`: the URL of the next page to read) or,
without one, at its URL. Each page is fetched through `egress.request` with the stored
credential, its records (`records_key`, or the page itself when it is a list) are written with
`analytics.events.record_many`, and the next page's URL (`next_key` in the body, or a `Link:
rel="next"` header) becomes the cursor, committed in the same transaction as the page's events:
a run that fails half-way keeps what it read, and the next run resumes at the page that failed,
without duplicates. When the last page names a cursor (`cursor_key`), the next run starts at
the URL with `cursor_param=<cursor>` (incremental sync); otherwise at the URL again.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from uuid import UUID

from flask import current_app
from sqlalchemy import select

from .. import egress, keys
from ..analytics.events import PROPERTIES_MAX_BYTES, TEXT_MAX, event, record_many
from ..extensions import db
from .delivery import body_text, heads
from .models import Integration, IntegrationStatus, LogEntry
from .services import credentials_of

PAGE_MAX_BYTES = 5 * 1024 * 1024
LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?', re.IGNORECASE)
SOURCE = "integration"


def now() -> datetime:
    return datetime.now(UTC)


def _with_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name] + [(name, value)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _properties(record: dict) -> dict:
    """The record as the event's properties; past the analytics size limit, its scalar members only."""
    if len(json.dumps(record, separators=(",", ":"), default=str).encode()) <= PROPERTIES_MAX_BYTES:
        return record
    small = {k: v for k, v in record.items() if isinstance(v, (str, int, float, bool)) and len(str(v)) <= 200}
    return {**dict(list(small.items())[:40]), "_truncated": True}


def rows_of(config: dict, page: Any) -> list[dict] | None:
    """The analytics rows of one page, or None when the page holds no list of records."""
    records = page if isinstance(page, list) else page.get(config.get("records_key") or "data") \
        if isinstance(page, dict) else None
    if not isinstance(records, list):
        return None
    id_key, time_key = config.get("id_key") or "id", config.get("time_key") or "occurred_at"
    rows = []
    for record in records:
        if not isinstance(record, dict):
            record = {"value": record}
        source_id = record.get(id_key)
        rows.append(event(config["event_type"], _properties(record), _time(record.get(time_key)),
                          source=SOURCE, source_id=str(source_id)[:TEXT_MAX] if source_id is not None else None))
    return rows


def _next(config: dict, page: Any, response, url: str) -> str | None:
    link = None
    if isinstance(page, dict):
        value = page.get(config.get("next_key") or "next")
        if isinstance(value, str) and value:
            link = value
    if link is None:
        header = {k.lower(): v for k, v in response.headers.items()}.get("link", "")
        found = LINK_NEXT.search(header)
        link = found.group(1) if found else None
    return urljoin(url, link) if link else None


def run(tenant_id: UUID, integration_id: UUID, commit: Callable[[], None]) -> LogEntry | None:
    """One sync run (the caller is in the tenant's scope; `commit` ends each page's transaction)."""
    integration = db.session.scalar(select(Integration).where(Integration.tenant_id == tenant_id,
                                                              Integration.id == integration_id))
    if integration is None or not integration.enabled or integration.provider != "json_source":
        return None
    config = dict(integration.config or {})
    start = integration.sync_cursor or config["url"]
    entry = LogEntry(tenant_id=tenant_id, integration_id=integration.id, kind="sync", state="pending", attempts=1,
                     payload={"pages": 0, "records": 0, "started_at": start != config["url"] and "cursor" or "url"},
                     request={}, response={})
    db.session.add(entry)
    integration.sync_status = "running"
    commit()
    try:
        token = credentials_of(integration).get("token")
    except keys.Unreadable:
        return _fail(integration, entry, "The stored token cannot be read: replace the credentials.", commit)
    secrets = [token] if token else []
    headers = {"Accept": "application/json", "User-Agent": "Portal-Sync/1.0"}
    if token:
        header = config.get("auth_header") or "Authorization"
        headers[header] = f"Bearer {token}" if header.lower() == "authorization" else token
    max_pages = current_app.config["SOURCE_MAX_PAGES"]
    url, seen, pages, records = start, set(), 0, 0
    while url:
        if pages >= max_pages:
            break  # the rest next run, from the cursor
        if url in seen:
            return _fail(integration, entry, f"The pages lead back to one already read ({url[:200]}).", commit)
        seen.add(url)
        started = now()
        entry.request = {"method": "GET", "url": _redacted_url(url, secrets), "headers": heads(headers, secrets),
                         "at": started.isoformat()}
        try:
            response = egress.request("GET", url, headers=headers, timeout=current_app.config["SOURCE_TIMEOUT"],
                                      max_bytes=PAGE_MAX_BYTES)
        except egress.EgressError as exc:
            return _fail(integration, entry, f"Page {pages + 1} could not be read: {exc}", commit)
        entry.duration_ms = response.elapsed_ms
        entry.response = {"status": response.status, "headers": heads(dict(response.headers), secrets),
                          "body": body_text(response.body, secrets)}
        if not 200 <= response.status < 300:
            return _fail(integration, entry, f"Page {pages + 1} failed: the source answered {response.status}.",
                         commit)
        try:
            page = json.loads(response.body)
        except ValueError:
            return _fail(integration, entry, f"Page {pages + 1} is not JSON.", commit)
        rows = rows_of(config, page)
        if rows is None:
            return _fail(integration, entry, f"Page {pages + 1} has no list of records under "
                                             f"“{config.get('records_key') or 'data'}”.", commit)
        record_many(tenant_id, rows)
        pages, records = pages + 1, records + len(rows)
        following = _next(config, page, response, url)
        if following is None:
            cursor = page.get(config.get("cursor_key") or "cursor") if isinstance(page, dict) else None
            following_run = _with_param(config["url"], config.get("cursor_param") or "cursor", str(cursor)) \
                if cursor not in (None, "") else None
            integration.sync_cursor = following_run
        else:
            integration.sync_cursor = following
        entry.payload = {**entry.payload, "pages": pages, "records": records}
        commit()  # this page's events and the cursor past it, together
        url = following
    entry.state, entry.finished_at = "succeeded", now()
    entry.error = None if url is None else f"Stopped after {max_pages} pages; the next run goes on from the cursor."
    integration.status = IntegrationStatus.ACTIVE
    integration.last_sync_at, integration.sync_status, integration.sync_error = now(), "succeeded", None
    integration.failures_in_row, integration.failing_since = 0, None
    integration.next_sync_at = now() + timedelta(minutes=int(config.get("interval_minutes") or 60))
    commit()
    return entry


def _redacted_url(url: str, secrets: list[str]) -> str:
    from .delivery import redact
    return redact(url, secrets)


def _fail(integration: Integration, entry: LogEntry, error: str, commit: Callable[[], None]) -> LogEntry:
    entry.state, entry.error, entry.finished_at = "failed", error[:1000], now()
    integration.status = IntegrationStatus.ERROR
    integration.last_sync_at, integration.sync_status, integration.sync_error = now(), "failed", error[:1000]
    integration.failures_in_row += 1
    integration.failing_since = integration.failing_since or now()
    # Back off while it keeps failing: the interval, doubled per failure, at most a day.
    minutes = int((integration.config or {}).get("interval_minutes") or 60)
    integration.next_sync_at = now() + timedelta(minutes=min(minutes * 2 ** min(integration.failures_in_row - 1, 10),
                                                             1440))
    commit()
    return entry
