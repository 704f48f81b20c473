"""IANA time zone names, checked against the installed list.

Never load a name to find out whether it is one: ZoneInfo treats the string as a path under the
zone directory (a 1 MB string is `OSError: File name too long`, a 500). The list is read once.
"""
from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo, available_timezones


@cache
def names() -> frozenset[str]:
    # `localtime` is this machine's alias, not an IANA name (and PostgreSQL does not know it).
    return frozenset(available_timezones()) - {"localtime"}


@cache
def sorted_names() -> tuple[str, ...]:
    """For the forms' suggestion lists."""
    return tuple(sorted(names()))


def is_timezone(name: object) -> bool:
    return isinstance(name, str) and name in names()


def zone(name: object, default: str = "UTC") -> ZoneInfo:
    """The zone a stored name stands for, or `default` when it names none."""
    return ZoneInfo(name if is_timezone(name) else default)
