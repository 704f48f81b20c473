"""/t/<slug>/logo and /t/<slug>/brand.css: an organization's branding, for its members only
(anyone else gets the tenant layer's 404). The header links them with the version as a query
string, so a browser keeps each version for a year and asks again only when it changes."""
from __future__ import annotations

from flask import Response, abort, request

from ..tenancy import Permission, current, requires, tenant_blueprint
from . import branding

bp = tenant_blueprint("branding", __name__)

FOREVER = "private, max-age=31536000, immutable"


def _cached(response: Response, version: str) -> Response:
    """An ETag always; a year in the cache when the URL names the current version."""
    response.set_etag(version)
    response.headers["Cache-Control"] = FOREVER if request.args.get("v") == version else "private, no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response.make_conditional(request)


@bp.get("/logo")
@requires(Permission.TENANT_VIEW)
def logo():
    row = branding.current_logo(current())
    if row is None:
        abort(404)
    response = Response(row.content, mimetype=row.media_type)
    response.headers["Content-Disposition"] = "inline"
    return _cached(response, row.sha256[:16])


@bp.get("/brand.css")
@requires(Permission.TENANT_VIEW)
def stylesheet():
    accent = branding.branding(current().tenant).get("accent")
    # Only a checked colour ever reaches the stylesheet (services.check_accent); no other text.
    body = f":root {{ --brand: {accent}; }}\n" if accent and branding.HEX.fullmatch(accent) else "/* no accent */\n"
    return _cached(Response(body, mimetype="text/css"), (accent or "none").lstrip("#"))
