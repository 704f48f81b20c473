"""Text search helpers shared by the list pages."""
from __future__ import annotations


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, lower-cased, with LIKE's wildcards taken literally
    (PostgreSQL's default escape character is the backslash)."""
    escaped = text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
