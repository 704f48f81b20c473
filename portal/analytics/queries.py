"""Reading events back: counts per day (UTC days), by type, and the devices online per day.

The analytics page counts one type from the events themselves (exact, any range; the statement
bounds `occurred_at` with values, so PostgreSQL prunes to the months asked for, and reads the
(tenant_id, event_type, occurred_at) index only). The dashboard's two charts read the daily
rollup `analytics_daily`, which the insert keeps: aggregating every event of 30 days took about
0.5 s for a tenant with 500,000 events in 90 days (bench.analytics), the rollup a millisecond.
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
# The dashboard reads the daily rollup (analytics_daily): a few rows per day, whatever the volume.
_PER_DAY_BY_TYPE = text("""
SELECT day, event_type, events FROM analytics_daily WHERE tenant_id = :t AND day BETWEEN :first AND :last
""")
# Each status change moved the online count by +1 (to online), -1 (from online) or 0; the rollup
# holds each day's sum.
_ONLINE_DELTAS = text("""
SELECT day, online_delta FROM analytics_daily
 WHERE tenant_id = :t AND event_type = :type AND day BETWEEN :first AND :last
""")
_TYPES = text("""
SELECT DISTINCT event_type FROM analytics_daily
 WHERE tenant_id = :t AND day BETWEEN :first AND :last ORDER BY 1 LIMIT 200
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
    rows = db.session.execute(_PER_DAY_BY_TYPE, {"t": tenant_id, "first": first, "last": last}).all()
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
        "t": tenant_id, "type": DEVICE_STATUS, "first": first + timedelta(days=1), "last": last}).all())
    counts, online = [], online_now
    for day in reversed(days(first, last)):
        counts.append((day, max(online, 0)))
        online -= int(deltas.get(day, 0))
    return list(reversed(counts))


def event_types(tenant_id: UUID, first: date, last: date) -> list[str]:
    return list(db.session.scalars(_TYPES, {"t": tenant_id, "first": first, "last": last}))
