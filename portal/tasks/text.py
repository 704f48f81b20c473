"""Plain text as HTML: escaped, line breaks kept (by CSS), web addresses made links."""
from __future__ import annotations

import re

from markupsafe import Markup, escape

# Matched in the escaped text: an address ends at whitespace or at a character that escaping
# turned into an entity (<, >, ", '), so nothing a user typed can leave the href.
URL = re.compile(r"\bhttps?://[^\s&]+(?:&amp;[^\s&]+)*", re.IGNORECASE)
TRAILING = ".,;:!?)]}"


def _link(match: re.Match) -> str:
    url = match.group(0)
    tail = ""
    while url and url[-1] in TRAILING:
        url, tail = url[:-1], url[-1] + tail
    for entity in ("&#34;", "&#39;", "&lt;", "&gt;"):  # never inside an address
        if entity in url:
            cut = url.index(entity)
            url, tail = url[:cut], url[cut:] + tail
    if not re.match(r"https?://[^/\s]", url, re.IGNORECASE):
        return match.group(0)
    return f'<a href="{url}" rel="nofollow noopener noreferrer" target="_blank">{url}</a>{tail}'


def linkify(text: str | None) -> Markup:
    """`text` escaped, with http(s) addresses as links; the only HTML in the result is ours."""
    return Markup(URL.sub(_link, str(escape(text or ""))))
