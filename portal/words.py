"""Small English for messages built from names and counts: "Beta Solutions’ plan", "1 notification",
"22 notifications". A name typed by a person is never wrapped in quotes and then made possessive
("‘Walk Meter 1’’s agent"): say "the agent of ‘Walk Meter 1’" instead."""
from __future__ import annotations


def possessive(name: str) -> str:
    """Name’s, or Name’ for a name ending in s (Beta Solutions’ plan)."""
    name = str(name)
    return f"{name}’" if name.endswith(("s", "S")) else f"{name}’s"


def plural(count: int, one: str, many: str | None = None) -> str:
    """"1 notification", "22 notifications", "1,200 devices"."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"
