"""/t/<slug>/search: the palette's fragment for htmx (and palette.js), a page otherwise."""
from __future__ import annotations

import unicodedata

from flask import abort, render_template, request

from ..extensions import htmx
from ..tenancy import Permission, current, requires, tenant_blueprint
from . import queries

bp = tenant_blueprint("search", __name__)

QUERY_MAX = 100  # what is searched; longer input is cut, as in the list pages
RAW_MAX = 1000  # beyond this it is not a search anyone typed


def clean(raw: str) -> str:
    """The query as searched: no control or format characters, runs of spaces as one, cut."""
    if len(raw) > RAW_MAX:
        abort(400, f"Search for at most {QUERY_MAX} characters.")
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in raw)
    return " ".join(text.split())[:QUERY_MAX].strip()


@bp.get("/search")
@requires(Permission.TENANT_VIEW)
def index():
    q = clean(request.args.get("q", ""))
    groups = queries.search(current(), q)
    return render_template("search/_results.html" if htmx else "search/index.html", groups=groups, q=q)
