"""Interface plumbing shared by every area: toasts for htmx actions, the header's tenant tabs
outside a tenant, the favicon.

A toast is an `HX-Trigger` response header (`{"toast": {"items": [{"message", "level"}]}}`),
so any htmx action can raise one; static/portal.js shows it. Views keep calling `flash()`:
for an htmx request that is answered in place (not redirected), the flashed messages leave
as toasts instead of waiting for the next full page.
"""
from __future__ import annotations

import json
from html import escape as _escape
from datetime import datetime, timezone

from flask import Flask, get_flashed_messages, request, send_from_directory
from markupsafe import Markup
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError
from user_agents import parse as parse_user_agent

LEVELS = {"success": "success", "error": "error", "message": "info", "info": "info", "warning": "error"}


def trigger(response, event: str, detail=None):
    """Add an event to the response's HX-Trigger header, keeping the ones already there."""
    raw = response.headers.get("HX-Trigger")
    events = {}
    if raw:
        try:
            events = json.loads(raw)
        except ValueError:
            events = {name.strip(): None for name in raw.split(",") if name.strip()}
    if event == "toast" and isinstance(events.get("toast"), dict):
        events["toast"]["items"] += detail["items"]
    else:
        events[event] = detail
    response.headers["HX-Trigger"] = json.dumps(events)
    return response


def toast(response, message: str, level: str = "success"):
    return trigger(response, "toast", {"items": [{"message": message, "level": LEVELS.get(level, "info")}]})


def _flashes_as_toasts(response):
    # Actions only: an htmx GET (a list page, a panel) leaves flashed messages for the next page.
    answered_in_place = response.status_code < 300 or response.status_code == 422
    if (answered_in_place and request.method != "GET" and request.headers.get("HX-Request") == "true"
            and "HX-Redirect" not in response.headers and "HX-Location" not in response.headers
            and "HX-Refresh" not in response.headers):
        for category, message in get_flashed_messages(with_categories=True):
            toast(response, message, category)
    return response


def header_tenant():
    """Outside a tenant's pages (/account, /dev/mail, ...), the organization the header's tabs
    point at: the one the user used last, else their first. Returns (tenant, permissions) or None."""
    from .tenancy import Permission, current_or_none
    from .tenancy.queries import my_tenants
    from .tenancy.roles import role_of

    ctx = current_or_none()
    if ctx is not None:
        return ctx.tenant, ctx.permissions
    if not current_user.is_authenticated:
        return None
    try:
        rows = my_tenants(current_user.id)
    except SQLAlchemyError:  # an error page while the database is away still renders
        return None
    rows = [(t, m) for t, m in rows if t.is_readable]  # a suspended tenant has no pages to point at
    if not rows:
        return None
    tenant, membership = next(((t, m) for t, m in rows if t.id == current_user.last_tenant_id), rows[0])
    try:
        permissions = role_of(membership).permissions
        if tenant.is_read_only:
            permissions = frozenset(p for p in permissions if p.reads)
        return tenant, permissions
    except KeyError:  # a custom role, unreadable outside its tenant (RLS): its dashboard at least
        return tenant, frozenset({Permission.TENANT_VIEW})


def options(rows, selected: str = "") -> Markup:
    """`<option>`s of (value, label) rows in one pass, values and labels escaped (html.escape:
    the same characters as Jinja's, without a Markup object per value): the device page's menus
    list every site, and a Jinja loop over them cost more than its rows."""
    selected = "" if selected is None else str(selected)
    return Markup("".join(f'<option value="{_escape(str(value))}"{" selected" if str(value) == selected else ""}>'
                          f'{_escape(str(label))}</option>' for value, label in rows))


def init_app(app: Flask) -> None:
    app.after_request(_flashes_as_toasts)
    app.jinja_env.globals["header_tenant"] = header_tenant
    app.jinja_env.globals["options"] = options
    app.jinja_env.filters["ago"] = ago
    from .security.events import method_label, reason_label
    from .words import plural, possessive
    app.jinja_env.filters["signin_reason"] = reason_label
    app.jinja_env.filters["signin_method"] = method_label
    app.jinja_env.filters["possessive"] = possessive
    app.jinja_env.filters["plural"] = plural
    app.jinja_env.filters["browser"] = browser_name

    @app.get("/favicon.ico")
    def favicon():
        return send_from_directory(app.static_folder, "favicon.svg", mimetype="image/svg+xml",
                                   max_age=86400)


def ago(when, now=None) -> str:
    """"2 minutes ago", "3 days ago": a relative time for lists and histories."""
    if when is None:
        return "never"
    now = now or datetime.now(timezone.utc)
    seconds = int((now - when).total_seconds())
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"


def browser_name(user_agent: str | None) -> str:
    """"Chrome 131 on Linux" from a User-Agent header (user-agents / ua-parser)."""
    if not user_agent:
        return "Unknown browser"
    parsed = parse_user_agent(user_agent)
    browser = parsed.browser.family
    if browser == "Other":
        return "Unknown browser"
    major = parsed.browser.version[0] if parsed.browser.version else None
    name = f"{browser} {major}" if major is not None else browser
    system = parsed.os.family
    return f"{name} on {system}" if system and system != "Other" else name
