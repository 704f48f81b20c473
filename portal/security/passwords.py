"""Password rules (OWASP ASVS 5 / NIST 800-63B): length, not a common password, no composition rules."""
from __future__ import annotations

from functools import lru_cache

MIN_LENGTH, MAX_LENGTH = 12, 1024


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    # zxcvbn bundles ~30,000 of the most used passwords; offline, no API call.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS
    return frozenset(FREQUENCY_LISTS["passwords"])


def problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """What is wrong with a new password, in words for the user; None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    lowered = password.lower()
    if lowered in _common() or len(set(lowered)) < 4:
        return "This password is too common: choose one that others are unlikely to use."
    if email and lowered in (email.lower(), email.split("@")[0].lower()):
        return "Do not use your email address as your password."
    if name and lowered == name.lower():
        return "Do not use your name as your password."
    return None
