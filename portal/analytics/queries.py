"""Reading events back: counts per day (UTC days), by type, and the devices online per day.

Every statement bounds `occurred_at` with constants, so PostgreSQL prunes to the months asked
for, and leads with tenant_id (the primary key or the (tenant_id, event_type, occurred_at) index).
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from uuid import UUID

from sqlalchemy import text

from ..extensions import db
from .events import DEVICE_STATUS

_PER_DAY = text("""
SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
  FROM analytics_events
 WHERE tenant_id = :t AND event_type = :type AND occurred_at >= :lo AND occurred_at < :hi
 GROUP BY 1 ORDER BY 1
""")
_PER_DAY_BY_TYPE = text("""
SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, event_type, count(*) AS n
  FROM analytics_events
 WHERE tenant_id = :t AND occurred_at >= :lo AND occurred_at < :hi
 GROUP BY 1, 2
""")
# Each status change moves the online count by +1 (to online), -1 (from online) or 0.
_ONLINE_DELTAS = text("""
SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day,
       sum((properties->>'to' = 'online')::int - coalesce((properties->>'from' = 'online')::int, 0)) AS delta
  FROM analytics_events
 WHERE tenant_id = :t AND event_type = :type AND source = 'portal' AND occurred_at >= :lo AND occurred_at < :hi
 GROUP BY 1
""")
_TYPES = text("""
SELECT DISTINCT event_type FROM analytics_events
 WHERE tenant_id = :t AND occurred_at >= :lo AND occurred_at < :hi ORDER BY 1 LIMIT 200
""")


def utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def per_day(tenant_id: UUID, event_type: str, first: date, last: date) -> list[tuple[date, int]]:
    """Every day from `first` to `last` (inclusive) with its count of `event_type`, zeros included."""
    counts = dict(db.session.execute(_PER_DAY, {"t": tenant_id, "type": event_type, "lo": utc_midnight(first),
                                                "hi": utc_midnight(last + timedelta(days=1))}).all())
    return [(d, counts.get(d, 0)) for d in days(first, last)]


def per_day_by_type(tenant_id: UUID, first: date, last: date, top: int = 5) -> tuple[list[str], list[tuple[date, dict]]]:
    """The `top` busiest types by name (the rest as "other") and each day's counts of them."""
    rows = db.session.execute(_PER_DAY_BY_TYPE, {"t": tenant_id, "lo": utc_midnight(first),
                                                 "hi": utc_midnight(last + timedelta(days=1))}).all()
    totals: dict[str, int] = defaultdict(int)
    for _, kind, n in rows:
        totals[kind] += n
    kept = sorted(sorted(totals, key=lambda k: -totals[k])[:top])
    series = kept + (["other"] if len(totals) > top else [])
    by_day: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day, kind, n in rows:
        by_day[day][kind if kind in kept else "other"] += n
    return series, [(d, dict(by_day.get(d, {}))) for d in days(first, last)]


def online_per_day(tenant_id: UUID, online_now: int, last: date, span: int = 30) -> list[tuple[date, int]]:
    """Devices online at the end of each of the `span` days up to `last` (today), reconstructed
    backwards from the count online now: the end of day D had what the end of day D+1 had, less
    the changes made on D+1 (`online(D) = online(D+1) - delta(D+1)`; today ends now). Exact when
    every status change since the first day was recorded; a change made around the events (SQL by
    hand, data older than the feature) shifts the days before it by its amount."""
    first = last - timedelta(days=span - 1)
    deltas = dict(db.session.execute(_ONLINE_DELTAS, {
        "t": tenant_id, "type": DEVICE_STATUS, "lo": utc_midnight(first + timedelta(days=1)),
        "hi": utc_midnight(last + timedelta(days=1))}).all())
    counts, online = [], online_now
    for day in reversed(days(first, last)):
        counts.append((day, max(online, 0)))
        online -= int(deltas.get(day, 0))
    return list(reversed(counts))


def event_types(tenant_id: UUID, first: date, last: date) -> list[str]:
    return list(db.session.scalars(_TYPES, {"t": tenant_id, "lo": utc_midnight(first),
                                            "hi": utc_midnight(last + timedelta(days=1))}))
