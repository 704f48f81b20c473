"""JSON objects as PostgreSQL's jsonb accepts them: UTF-8, no NaN/Infinity, numbers a float can
hold, no NUL characters or lone surrogates, bounded nesting. One parser for the device forms, the
CSV import, the analytics event form, the API's bodies and the agents' bodies."""
from __future__ import annotations

import json
import math

MAX_DEPTH = 20
MAX_DIGITS = 308  # as far as a float reaches; beyond it Python's int() may refuse (4,300 digits)


class JsonValueError(ValueError):
    """The text is not a JSON object the database can store; the message (a predicate) says why.
    `path` names the member at fault ("contact.name", "devices[0].metrics"), or is None when the
    text as a whole is at fault (not UTF-8, not JSON, too deep)."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


class _Refused:
    """A value the parser met but the database cannot store; reported with its place by _check."""

    def __init__(self, reason: str):
        self.reason = reason


def _shown(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:20]}… ({len(text):,} characters)"


def _constant(name: str):
    return _Refused(f"contains {name}, which JSON does not allow")


def _finite(text: str):
    value = float(text)
    if not math.isfinite(value):
        return _Refused(f"contains the number {_shown(text)}, which is too large")
    return value


def _integer(text: str):
    if len(text.lstrip("-")) > MAX_DIGITS:
        return _Refused(f"contains the number {_shown(text)}, which is too large (at most {MAX_DIGITS} digits)")
    return int(text)


def _text_fault(value: str, allow_nul: bool = False) -> str | None:
    if not allow_nul and "\x00" in value:
        return "contains the NUL character (\\u0000), which cannot be stored"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"contains a lone surrogate (\\u{ord(value[exc.start]):04x}), which is not a character"
    return None


def _member(path: str, key) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)


def _check(value, path: str = "", depth: int = 0, allow_nul: bool = False) -> None:
    if depth > MAX_DEPTH:
        raise JsonValueError(f"is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, _Refused):
        raise JsonValueError(value.reason, path)
    if isinstance(value, str):
        fault = _text_fault(value, allow_nul)
        if fault:
            raise JsonValueError(fault, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            fault = _text_fault(key, allow_nul)
            if fault:
                raise JsonValueError(f"{fault} (in a member's name)", path)
            _check(item, _member(path, key), depth + 1, allow_nul)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, _member(path, index), depth + 1, allow_nul)


def parse_object(text: str | bytes, *, allow_nul: bool = False) -> dict:
    """`allow_nul`: the caller removes or refuses NUL characters itself (an agent's log)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonValueError(f"is not UTF-8 (byte {exc.start} cannot be decoded)") from exc
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_finite, parse_int=_integer)
    except json.JSONDecodeError as exc:
        raise JsonValueError(f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
    except RecursionError as exc:
        raise JsonValueError(f"is nested more than {MAX_DEPTH} levels deep") from exc
    if not isinstance(value, dict):
        raise JsonValueError("must be a JSON object, e.g. {\"zones\": 12}")
    _check(value, allow_nul=allow_nul)
    return value
