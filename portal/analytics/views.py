"""/t/<slug>/analytics/: chart any event type per day over a chosen range (analytics:view),
and record a custom event by hand (events:write; machines use POST /api/v1/events)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from flask import Response, flash, redirect, render_template, request, url_for

from ..database import replica
from ..extensions import db, htmx
from ..jsondata import JsonValueError, parse_object
from ..tenancy import Permission, current, requires, tenant_blueprint
from ..tenants.models import Plan
from . import charts, events, queries
from .forms import MAX_SPAN_DAYS, ChartForm, EventForm

bp = tenant_blueprint("analytics", __name__, "/analytics")
DEFAULT_TYPE = events.DEVICE_STATUS


def today() -> date:
    return datetime.now(timezone.utc).date()


def chart_range(form: ChartForm) -> tuple[date, date, str | None]:
    """(first, last, problem) from the form; a bad custom range falls back to 30 days, with a message."""
    last = today()
    if form.range.data in ("7", "30", "90"):
        return last - timedelta(days=int(form.range.data) - 1), last, None
    if form.range.data == "custom":
        start, end = form.start.data, form.end.data
        if not start or not end:
            return last - timedelta(days=29), last, "Choose both dates, or one of the ranges."
        if start > end:
            return last - timedelta(days=29), last, "The first date must not be after the last."
        if (end - start).days + 1 > MAX_SPAN_DAYS:
            return last - timedelta(days=29), last, f"Choose at most {MAX_SPAN_DAYS} days."
        return start, end, None
    return last - timedelta(days=29), last, None


def retention_days(ctx) -> int:
    return db.session.get(Plan, ctx.tenant.plan).analytics_retention_days


def type_chart(tenant_id, kind: str, first: date, last: date) -> charts.Chart:
    series = queries.per_day(tenant_id, kind, first, last)
    return charts.columns(f"{kind} per day, {first:%b %-d, %Y} to {last:%b %-d, %Y}",
                          [(d, {kind: n}) for d, n in series], [kind])


@bp.get("/")
@requires(Permission.ANALYTICS_VIEW)
@replica.on_replica
def index():
    ctx = current()
    form = ChartForm(request.args)
    form.validate()
    first, last, problem = chart_range(form)
    kind = (form.type.data or "").strip() or DEFAULT_TYPE
    chart = type_chart(ctx.tenant_id, kind, first, last)
    context = {"form": form, "chart": chart, "kind": kind, "first": first, "last": last, "problem": problem}
    if htmx and not htmx.history_restore_request:
        response = Response(render_template("analytics/_chart.html", **context))
        response.headers["HX-Push-Url"] = url_for(".index", **{k: v for k, v in request.args.items() if v})
        return response
    types = queries.event_types(ctx.tenant_id, today() - timedelta(days=89), today())
    return render_template("analytics/index.html", types=types, event_form=EventForm(),
                           retention_days=retention_days(ctx), **context)


@bp.post("/events")
@requires(Permission.EVENTS_WRITE)
def record_event():
    """One custom event through the same validation as the API's batches."""
    ctx = current()
    form = EventForm()
    if form.validate_on_submit():
        item = {"type": form.type.data.strip()}
        if form.name.data:
            item["name"] = form.name.data.strip()
        try:  # the parser the API uses: NaN, deep nesting or a lone surrogate would fail in the database
            item["properties"] = parse_object(form.properties.data) if (form.properties.data or "").strip() else {}
        except JsonValueError as exc:
            form.properties.errors.append("Write a JSON object, e.g. {\"site\": \"HQ\"}." if str(exc).startswith("must be")
                                          else f"This {exc}.")
        else:
            result = events.record_custom(ctx, [item], source="portal")
            if result.ok:
                flash(f"Recorded a {item['type']} event.", "success")
                return redirect(url_for(".index", type=item["type"], range="7"), 303)
            for error in result.errors:
                target = getattr(form, error.pointer.rsplit("/", 1)[-1], None) if error.pointer else None
                (target.errors if target is not None else form.type.errors).append(error.message)
    first, last = today() - timedelta(days=29), today()
    kind = (form.type.data or "").strip() or DEFAULT_TYPE
    if not events.TYPE_PATTERN.fullmatch(kind):
        kind = DEFAULT_TYPE
    return render_template("analytics/index.html", form=ChartForm(), chart=type_chart(ctx.tenant_id, kind, first, last),
                           kind=kind, first=first, last=last, problem=None, event_form=form,
                           retention_days=retention_days(ctx),
                           types=queries.event_types(ctx.tenant_id, today() - timedelta(days=89), today())), 422
