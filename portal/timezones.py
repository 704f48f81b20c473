"""IANA time zone names, checked against the installed list.

Never load a name to find out whether it is one: ZoneInfo treats the string as a path under the
zone directory (a 1 MB string is `OSError: File name too long`, a 500). The list is read once.
"""
from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from flask import has_app_context
from sqlalchemy import text

_known: frozenset[str] | None = None


def names() -> frozenset[str]:
    """The zones both Python and the database know: SQL computes with them too (tasks' due dates),
    and the two tz databases differ by release (PostgreSQL 16.2 has no America/Coyhaique, which
    Python's tzdata has; a site in it made the task list fail). Read once per process, at the first
    use with an app (before that, Python's list alone)."""
    global _known
    if _known is not None:
        return _known
    # `localtime` is this machine's alias, not an IANA name (and PostgreSQL does not know it).
    python = frozenset(available_timezones()) - {"localtime"}
    if not has_app_context():
        return python
    from .extensions import db
    _known = python & frozenset(db.session.scalars(text("SELECT name FROM pg_timezone_names")))
    return _known


def sorted_names() -> tuple[str, ...]:
    """For the forms' suggestion lists."""
    return _sorted(names())


@cache
def _sorted(zones: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(zones))


def is_timezone(name: object) -> bool:
    return isinstance(name, str) and name in names()


def zone(name: object, default: str = "UTC") -> ZoneInfo:
    """The zone a stored name stands for, or `default` when it names none."""
    return ZoneInfo(name if is_timezone(name) else default)
