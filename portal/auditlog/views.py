"""/t/<slug>/audit/: the tenant's audit trail (page or htmx fragment, one URL) and its exports."""
from __future__ import annotations

from datetime import date

from flask import Response, flash, redirect, render_template, request, stream_with_context, url_for

from sqlalchemy import text as sa_text

from .. import audit
from ..database import replica
from ..extensions import db, htmx
from ..rules import RuleViolation
from ..audit import retention
from ..tenancy import Permission, can, current, requires, tenant_blueprint
from . import describe, export, queries
from .forms import RetentionForm

bp = tenant_blueprint("audit", __name__, "/audit")


@bp.get("/")
@requires(Permission.AUDIT_VIEW)
@replica.on_replica
def index():
    ctx = current()
    state = queries.AuditFilter.from_args(request.args)
    page = queries.page(ctx.tenant_id, state)
    names = describe.Names.for_rows(ctx.tenant_id, page.rows)
    invitations = can(Permission.INVITATIONS_MANAGE)
    entries = [{"row": row, "sentence": describe.sentence(row, names), "diff": describe.diff(row.before, row.after),
                "link": describe.link(row, names, url_for, invitations)} for row in page.rows]
    context = {"page": page, "state": state, "entries": entries, "show": describe.show}
    if htmx and not htmx.history_restore_request:
        response = Response(render_template("audit/_rows.html", **context))
        response.headers["HX-Push-Url"] = url_for(".index", **state.args())
        return response
    return render_template("audit/index.html", actors=queries.actors(ctx.tenant_id), actions=queries.ACTIONS,
                           types=queries.RESOURCE_TYPES, retention_days=retention.retention_days(ctx.tenant.settings),
                           **context)


@bp.route("/retention", methods=["GET", "POST"])
@requires(Permission.AUDIT_MANAGE)
def retention_settings():
    ctx = current()
    kept = retention.retention_days(ctx.tenant.settings)
    form = RetentionForm(data={"days": kept} if request.method == "GET" else None)
    if form.validate_on_submit():
        try:
            retention.set_retention(ctx.tenant, ctx.user_id, form.days.data)
        except RuleViolation as exc:
            db.session.rollback()
            form.days.errors.append(exc.message)
        else:
            flash(f"Audit entries are now kept for {form.days.data} days.", "success")
            return redirect(url_for(".index"), 303)
    status = 422 if request.method == "POST" else 200
    return render_template("audit/retention.html", form=form, current=kept), status


@bp.get("/export.csv")
@requires(Permission.AUDIT_VIEW)
def export_csv():
    return _export("csv")


@bp.get("/export.jsonl")
@requires(Permission.AUDIT_VIEW)
def export_jsonl():
    return _export("jsonl")


def _export(fmt: str) -> Response:
    ctx = current()
    state = queries.AuditFilter.from_args(request.args)
    # Written in the request's transaction, committed at the edge before the body streams.
    audit.record(ctx.tenant_id, ctx.user_id, "audit.export", "audit", None, format=fmt, filter=state.describe())
    mimetype, extension = export.FORMATS[fmt]
    filename = f"audit-{ctx.tenant.slug}-{date.today():%Y%m%d}.{extension}"
    # Read on the replica once it has replayed the commit of the row above (read-your-writes).
    return Response(stream_with_context(replica.streamed(export.lines(ctx.tenant_id, state, fmt))), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})


@bp.get("/sign-ins")
@requires(Permission.AUDIT_VIEW)
def member_signins():
    """Members' sign-ins (seed 004's security log), when the organization's policy shares them."""
    ctx = current()
    shared = ((ctx.tenant.settings or {}).get("security") or {}).get("share_member_signins") is True
    rows = db.session.execute(sa_text("SELECT * FROM portal_member_signins(200)")).all() if shared else []
    return render_template("audit/signins.html", shared=shared, rows=rows)
