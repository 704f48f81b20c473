"""/admin/security-events: every account event, for system admins, with filters.

Read through the `security_events_admin_read` policy (app.user_id is an active system admin);
the blueprint answers 404 to everyone else first."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from uuid import UUID

from sqlalchemy import and_, or_, select, tuple_

from ..database.search import contains_pattern
from ..extensions import db
from ..security.events import KINDS
from ..security.models import SecurityEvent

PAGE_SIZE = 50
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Filter:
    q: str = ""
    event: str = ""
    severity: str = ""
    since: date | None = None
    until: date | None = None
    after: tuple[datetime, UUID] | None = None
    problems: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args) -> Filter:
        problems = []

        def day(name):
            raw = args.get(name, "").strip()
            if not raw:
                return None
            try:
                return date.fromisoformat(raw)
            except ValueError:
                problems.append(f"“{raw[:20]}” is not a date; use the form YYYY-MM-DD.")
                return None
        event, severity = args.get("event", ""), args.get("severity", "")
        return cls(q=" ".join(args.get("q", "").split())[:100], event=event if event in KINDS else "",
                   severity=severity if severity in SEVERITIES else "", since=day("from"), until=day("to"),
                   after=_decode(args.get("after", "")), problems=tuple(problems))

    def args(self, **changes) -> dict:
        s = replace(self, **changes)
        out = {"q": s.q, "event": s.event, "severity": s.severity, "from": s.since and s.since.isoformat(),
               "to": s.until and s.until.isoformat(), "after": s.after and _encode(s.after)}
        return {k: v for k, v in out.items() if v}


def _encode(position: tuple[datetime, UUID]) -> str:
    raw = json.dumps([position[0].isoformat(), str(position[1])]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, UUID] | None:
    try:
        when, ident = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(when), UUID(ident)
    except (ValueError, TypeError, json.JSONDecodeError):
        return None


def page(f: Filter) -> tuple[list[SecurityEvent], str | None]:
    """Newest first, keyset on (created_at, id)."""
    conditions = []
    if f.q:
        pattern = contains_pattern(f.q)
        conditions.append(or_(SecurityEvent.email.ilike(pattern), SecurityEvent.event.ilike(pattern)))
    if f.event:
        conditions.append(SecurityEvent.event == f.event)
    if f.severity:
        conditions.append(SecurityEvent.severity == f.severity)
    if f.since:
        conditions.append(SecurityEvent.created_at >= datetime.combine(f.since, time.min, tzinfo=timezone.utc))
    if f.until:
        conditions.append(SecurityEvent.created_at < datetime.combine(f.until + timedelta(days=1), time.min,
                                                                      tzinfo=timezone.utc))
    if f.after:
        conditions.append(tuple_(SecurityEvent.created_at, SecurityEvent.id) < tuple_(*f.after))
    rows = db.session.scalars(select(SecurityEvent).where(and_(True, *conditions))
                              .order_by(SecurityEvent.created_at.desc(), SecurityEvent.id.desc())
                              .limit(PAGE_SIZE + 1)).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return rows, (_encode((rows[-1].created_at, rows[-1].id)) if more else None)
