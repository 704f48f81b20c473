"""Interface plumbing shared by every area: toasts for htmx actions, the header's tenant tabs
outside a tenant, the favicon.

A toast is an `HX-Trigger` response header (`{"toast": {"items": [{"message", "level"}]}}`),
so any htmx action can raise one; static/portal.js shows it. Views keep calling `flash()`:
for an htmx request that is answered in place (not redirected), the flashed messages leave
as toasts instead of waiting for the next full page. `back_to_list` ends an action started
from a list (bulk forms) so that the list keeps its URL and filters, with or without htmx.

Secrets shown once (an API client's, an agent's, backup codes) are reached by
POST-redirect-GET: `keep_secret` puts the new secret in the session, encrypted, for the one
GET that shows it (`take_secret`); a reload finds nothing and says the secret was shown once.
"""
from __future__ import annotations

import json
from html import escape as _escape
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from cryptography.fernet import InvalidToken
from flask import (Flask, flash, g, get_flashed_messages, has_request_context, make_response, redirect, request,
                   send_from_directory, session)
from markupsafe import Markup
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError
from user_agents import parse as parse_user_agent

from .timezones import zone as zone_named

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


def back_to_list(back: str, message: str, level: str = "success"):
    """The answer to an action on a list's selection. A plain POST flashes and goes back to the
    list's URL (its filters included). An htmx request keeps the page: an error is a toast and
    nothing is swapped (the selection stays, to try again); a success is a toast, and the list
    is fetched again from `back` into the element the form targets."""
    if request.headers.get("HX-Request") != "true":
        flash(message, level)
        return redirect(back, 303)
    if level == "error":
        response = make_response("", 422)
        response.headers["HX-Reswap"] = "none"
        return toast(response, message, level)
    response = make_response("", 200)
    target = request.headers.get("HX-Target")
    if target:
        response.headers["HX-Location"] = json.dumps({"path": back, "target": f"#{target}", "swap": "outerHTML"})
    else:
        response.headers["HX-Refresh"] = "true"
    return toast(response, message, level)


SHOWN_ONCE = "shown_once"
SHOWN_ONCE_SECONDS = 600  # a stash older than this (the redirect never followed) is dropped


def _box():
    from .crypto import fernet
    return fernet("shown-once")


def keep_secret(key: str, values: dict) -> None:
    """Keep a just-made secret for the one page that shows it (never in the URL): in the session,
    encrypted, under `key` (what it belongs to, e.g. "api_client:<id>")."""
    session[SHOWN_ONCE] = {"key": key, "box": _box().encrypt(json.dumps(values).encode()).decode()}


def take_secret(key: str) -> dict | None:
    """The values kept for `key`, once: the next call (a reload) gets None."""
    stash = session.get(SHOWN_ONCE)
    if not isinstance(stash, dict) or stash.get("key") != key:
        return None
    session.pop(SHOWN_ONCE, None)
    try:
        return json.loads(_box().decrypt(str(stash.get("box", "")).encode(), ttl=SHOWN_ONCE_SECONDS))
    except (InvalidToken, ValueError):
        return None


def no_store(response):
    response = make_response(response)
    response.headers["Cache-Control"] = "no-store"
    return response


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
    app.jinja_env.filters["when"] = when
    app.jinja_env.globals["viewer_timezone"] = viewer_timezone
    app.jinja_env.globals["time_script_data"] = time_script_data
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
    """The relative words alone ("5 min ago"); "never" for None. Pages use `when`."""
    return "never" if when is None else relative(when, now)


# --- Times as people read them -------------------------------------------------------------
# `{{ x | when }}` is the one way a page shows a moment: <time datetime="ISO" title="absolute in
# the viewer's zone">relative text</time>. static/time.js re-renders the relative text as time
# passes and the title in the same zone (the account's, else the browser's).

UTC = timezone.utc
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def viewer_timezone() -> str | None:
    """The signed-in person's chosen zone (an IANA name), None when not chosen (or signed out)."""
    if not has_request_context():
        return None
    if "viewer_timezone" not in g:
        from .timezones import is_timezone
        try:
            name = getattr(current_user, "timezone", None) if current_user.is_authenticated else None
        except SQLAlchemyError:  # an error page while the database is away still renders
            name = None
        g.viewer_timezone = name if is_timezone(name) else None
    return g.viewer_timezone


def time_script_data() -> Markup:
    """static/time.js's attributes: the zone to show times in, the locale to write them in, and
    where to send the browser's zone while the signed-in person has none."""
    from flask import url_for
    from flask_wtf.csrf import generate_csrf

    zone = viewer_timezone()
    attrs = f' data-timezone="{_escape(zone or "")}"'
    try:
        unset = current_user.is_authenticated and not current_user.timezone
    except SQLAlchemyError:
        unset = False
    if unset:
        attrs += f' data-detect="{_escape(url_for("profile.timezone"))}" data-csrf="{_escape(generate_csrf())}"'
    locale = getattr(current_user, "locale", None) if current_user.is_authenticated else None
    if locale:  # the account's language and region for dates (a listed BCP 47 tag); else the browser's
        attrs += f' data-locale="{_escape(locale)}"'
    return Markup(attrs)


def _zone(name: str | None) -> ZoneInfo | timezone:
    # Through the checked list: a stored name is never loaded unchecked (portal.timezones).
    return zone_named(name) if name else UTC


def relative(when: datetime, now: datetime | None = None, zone=UTC) -> str:
    """"just now", "5 min ago", "in 3 hours", "yesterday", "in 3 days", "Mar 5", "Mar 5, 2024".
    Calendar words (yesterday, tomorrow, days) count days in `zone`. static/time.js says the same."""
    now = now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (now - when).total_seconds()
    past, size = seconds >= 0, abs(seconds)

    def said(n: int, unit: str) -> str:
        words = f"{n} {unit}{'' if n == 1 or unit == 'min' else 's'}"
        return f"{words} ago" if past else f"in {words}"

    if size < 45:
        return "just now"
    if size < 3600:
        return said(max(1, int(size / 60 + 0.5)), "min")
    if size < 86400:
        return said(int(size // 3600), "hour")
    local, today = when.astimezone(zone), now.astimezone(zone).date()
    days = abs((today - local.date()).days)
    if days <= 1:
        return "yesterday" if past else "tomorrow"
    if days < 30:
        return said(days, "day")
    text = f"{_MONTHS[local.month - 1]} {local.day}"
    return text if local.year == today.year else f"{text}, {local.year}"


def absolute(when: datetime, zone=UTC) -> str:
    """"Thu, Mar 5, 2026, 14:03 CET": the moment in full, in `zone`."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    local = when.astimezone(zone)
    return (f"{_DAYS[local.weekday()]}, {_MONTHS[local.month - 1]} {local.day}, {local.year}, "
            f"{local.hour:02d}:{local.minute:02d} {local.tzname()}")


def when(moment, never: str = "never", now: datetime | None = None, zone: str | None = None,
         iso: str | None = None) -> Markup:
    """`<time>` for a moment (an aware datetime; naive ones are UTC): relative text, the absolute
    time in the viewer's zone as its title. `never` is the text for None; `iso` the moment's ISO
    text when the caller has it already (the device list: isoformat is the costly part)."""
    if moment is None:
        return Markup(_escape(never))
    if isinstance(moment, date) and not isinstance(moment, datetime):
        return Markup(f'<time datetime="{moment.isoformat()}">{moment.isoformat()}</time>')
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    tz = _zone(zone or viewer_timezone())
    iso = iso or moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Markup(f'<time datetime="{iso}" title="{_escape(absolute(moment, tz))}" data-relative>'
                  f'{_escape(relative(moment, now, tz))}</time>')


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
