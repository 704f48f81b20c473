"""One-line text: names, titles and addresses people type end up in email headers (an invitation's
subject names the inviter and the organization), where a line break starts a new header (or, before
this check, made the message impossible to build). One rule for every form field, API member and
single sign-on claim of that kind: no control characters (Unicode Cc, which holds CR, LF, tab, NUL,
NEL) and no line or paragraph separators (U+2028, U+2029) - every character str.splitlines() splits on.
"""
from __future__ import annotations

import re

from wtforms.validators import ValidationError

# Exactly Unicode categories Cc (U+0000-001F, U+007F-009F), Zl (U+2028) and Zp (U+2029).
_CLASS = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_BREAKING = re.compile(f"[{_CLASS}]")
_RUN = re.compile(f" *[{_CLASS}][{_CLASS} ]*")  # with the spaces around it, made one space
PATTERN = f"^[^{_CLASS}]*$"  # the same rule for a JSON Schema (the API's OpenAPI document)
MESSAGE = "Write this on one line: line breaks, tabs and other control characters are not allowed."


def control_character(value: str) -> str | None:
    """The first character that has no place in one line of text, or None."""
    found = _BREAKING.search(value)
    return found.group() if found else None


def one_line(value: str) -> str:
    """`value` with each run of such characters made one space: for text that was never checked
    (rows written before the check, a provider's claims) on its way into a header."""
    return _RUN.sub(" ", value).strip()


class SingleLine:
    """WTForms validator: refuse control characters and line separators with a clear message."""

    def __init__(self, message: str = MESSAGE):
        self.message = message

    def __call__(self, form, field) -> None:
        if isinstance(field.data, str) and control_character(field.data) is not None:
            raise ValidationError(self.message)
