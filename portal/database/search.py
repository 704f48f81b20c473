"""Text search helpers shared by the list pages."""
from __future__ import annotations


def _literal(text: str) -> str:
    """`text` lower-cased, with LIKE's wildcards taken literally (PostgreSQL's default escape
    character is the backslash)."""
    return text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, lower-cased."""
    return f"%{_literal(text)}%"


def prefix_pattern(text: str) -> str:
    """A LIKE pattern matching what starts with `text`, lower-cased."""
    return f"{_literal(text)}%"
