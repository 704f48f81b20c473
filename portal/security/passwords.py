"""Password rules (OWASP ASVS 5 / NIST 800-63B): length, not a common password, no composition rules."""
from __future__ import annotations

from functools import lru_cache

MIN_LENGTH, MAX_LENGTH = 12, 1024


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    # zxcvbn bundles ~30,000 of the most used passwords; offline, no API call.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS
    return frozenset(FREQUENCY_LISTS["passwords"])


def _predictable(p: str) -> bool:
    """A common password with digits or symbols tacked on, digits alone, or a repeated chunk."""
    core = p.rstrip("0123456789!@#$%^&*.?-_ ")
    if core == "" or (len(core) >= 3 and core in _common()):
        return True
    for size in range(1, len(p) // 2 + 1):
        if len(p) % size == 0 and p == p[:size] * (len(p) // size) and (size <= 4 or p[:size] in _common()):
            return True
    return False


def problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """What is wrong with a new password, in words for the user; None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    lowered = password.lower()
    if lowered in _common() or _predictable(lowered):
        return "This password is too common or predictable: choose one that others are unlikely to use."
    if email and lowered in (email.lower(), email.split("@")[0].lower()):
        return "Do not use your email address as your password."
    if name and lowered == name.lower():
        return "Do not use your name as your password."
    return None
