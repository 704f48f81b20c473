"""JSON objects as PostgreSQL's jsonb accepts them: no NaN/Infinity, no NUL characters,
bounded nesting. One parser for the device forms and the CSV import."""
from __future__ import annotations

import json
import math

MAX_DEPTH = 20


class JsonValueError(ValueError):
    """The text is not a JSON object the database can store; the message (a predicate) says why."""


def _constant(name: str):
    raise JsonValueError(f"contains {name}, which JSON does not allow")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonValueError(f"contains the number {text}, which is too large")
    return value


def _check(value, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise JsonValueError(f"is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str) and "\x00" in value:
        raise JsonValueError("contains the NUL character (\\u0000), which cannot be stored")
    if isinstance(value, dict):
        for key, item in value.items():
            _check(key, depth + 1)
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)


def parse_object(text: str) -> dict:
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise JsonValueError(f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
    except RecursionError as exc:
        raise JsonValueError(f"is nested more than {MAX_DEPTH} levels deep") from exc
    if not isinstance(value, dict):
        raise JsonValueError("must be a JSON object, e.g. {\"zones\": 12}")
    _check(value)
    return value
