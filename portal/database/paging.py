"""Counting for keyset-paged lists: "51–100 of 1,234", exact up to COUNT_CAP, "10,000+" beyond.

The count reads at most COUNT_CAP + 1 rows of the list's own ordered index range, so it never
walks a whole big tenant, and answers in one statement both the number of matches and how many
of them come before the page shown (the position)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, func, literal, select

from ..extensions import db

COUNT_CAP = 10_000


@dataclass(frozen=True)
class Position:
    """Where a page stands: `before` rows precede it, `total` match; either is COUNT_CAP + 1
    when there are more than COUNT_CAP."""
    before: int
    shown: int
    total: int
    cap: int = COUNT_CAP


def position(ordered_keys: Select, shown: int, before_first: Callable[[object], ColumnElement[bool]] | None
             ) -> Position:
    """`ordered_keys`: the list's key columns, filtered and ordered as the list is. `before_first`
    gets the capped subquery's columns (`.c`) and says which rows come before the page's first."""
    capped = ordered_keys.limit(COUNT_CAP + 1).subquery("capped")
    before = func.count().filter(before_first(capped.c)) if before_first is not None else literal(0)
    total, ahead = db.session.execute(select(func.count(), before).select_from(capped)).one()
    return Position(ahead, shown, total, COUNT_CAP)
