"""The request edge: one transaction per request, security headers, template helpers."""
from __future__ import annotations

from urllib.parse import unquote_to_bytes

from flask import Flask, abort, current_app, g, request

from .database import conflicts, replica
from .errors import refused, safe_rollback
from .extensions import db
from .mail import deliver_after_response


def commit_or_rollback(response):
    """Commit once, at the edge, when the request succeeded; anything else rolls back."""
    if response.status_code < 400:
        session = db.session()
        # A request that never used the database (no transaction, nothing added) has nothing to end.
        if session.in_transaction() or session.new or session.dirty or session.deleted:
            wrote = replica.wrote(session)  # False at no cost without a read replica
            try:
                session.commit()
            except Exception as exc:
                if not conflicts.refused(exc):
                    raise
                # A write the database refused as it was flushed at the edge (a permission policy,
                # migration 0027): the 403 it would have been mid-request, instead of the view's answer.
                return security_headers(current_app.make_response(refused(exc)))
            if wrote:  # read-your-writes: this person's replica reads wait for this commit
                replica.remember_position()
        response = deliver_after_response(current_app._get_current_object(), response)
    else:
        safe_rollback()  # also when the error was the database going away
    return response


# The pages' Content Security Policy; the OAuth consent page widens form-action to the app's
# redirect URI (a browser applies form-action to the redirect that follows the form).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def security_headers(response):
    h = response.headers
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("Content-Security-Policy", CSP)
    if g.get("production"):
        # Browsers ignore HSTS over plain HTTP, so it is safe to send behind a TLS proxy too.
        h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    # Pages and errors render as fragments for htmx: caches must key on it.
    response.vary.add("HX-Request")
    return response


def refuse_nul_characters():
    """PostgreSQL text cannot hold NUL: refuse it once, here, rather than as a 500 in some query."""
    values = [request.path]
    for multi in (request.args, request.form):
        for _, items in multi.lists():
            values += items
    if any("\x00" in value for value in values):
        abort(400, "The request contains a NUL character, which no field accepts.")
    if not all(value.isascii() or _encodable(value) for value in values):
        abort(400, "The request contains a lone surrogate, which is not a character.")


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def refuse_invalid_utf8():
    """Werkzeug does not refuse bytes that are not UTF-8: in a query string or a urlencoded form it
    keeps them as literal `%FF` text (or drops the whole form), in a multipart field it stores U+FFFD.
    Either would be saved as something the sender never wrote, so refuse them. Runs before the
    form is parsed: the raw body it reads stays cached for the parser."""
    message = "The request is not valid UTF-8: send text as UTF-8."
    if not _utf8(unquote_to_bytes(request.query_string.replace(b"+", b" "))):
        abort(400, message)
    if request.mimetype == "application/x-www-form-urlencoded":
        if not _utf8(unquote_to_bytes(request.get_data(cache=True, parse_form_data=False).replace(b"+", b" "))):
            abort(400, message)
    elif request.mimetype == "multipart/form-data":
        raw = request.get_data(cache=True, parse_form_data=False)  # bounded by MAX_CONTENT_LENGTH
        # A field holding U+FFFD that the body does not hold as written was decoded with replacements.
        for _, values in request.form.lists():
            if any("\ufffd" in value and value.encode("utf-8", "replace") not in raw for value in values):
                abort(400, message)


def init_app(app: Flask) -> None:
    from . import ui
    ui.init_app(app)
    # First of all hooks: it must read the raw body before CSRFProtect's hook parses the form.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_invalid_utf8)
    app.before_request(refuse_nul_characters)
    app.after_request(commit_or_rollback)
    app.after_request(security_headers)

    @app.before_request
    def _env():
        g.production = app.config["PORTAL_ENV"] == "production"
