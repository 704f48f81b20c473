"""/t/<slug>/audit/: the tenant's audit trail (page or htmx fragment, one URL) and its exports."""
from __future__ import annotations

from datetime import date

from flask import Response, flash, g, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user

from .. import audit
from ..extensions import db, htmx
from ..rules import RuleViolation
from ..tenancy import can, requires, tenant_blueprint
from ..tenancy.permissions import Permission
from . import describe, export, queries, retention
from .forms import RetentionForm

bp = tenant_blueprint("audit", __name__, "/audit")


@bp.get("/")
@requires(Permission.AUDIT_VIEW)
def index():
    state = queries.AuditFilter.from_args(request.args)
    page = queries.page(g.tenant.id, state)
    names = describe.Names.for_rows(g.tenant.id, page.rows)
    invitations = can(Permission.INVITATIONS_MANAGE)
    entries = [{"row": row, "sentence": describe.sentence(row, names), "diff": describe.diff(row.before, row.after),
                "link": describe.link(row, names, url_for, invitations)} for row in page.rows]
    context = {"page": page, "state": state, "entries": entries, "show": describe.show}
    if htmx and not htmx.history_restore_request:
        response = Response(render_template("audit/_rows.html", **context))
        response.headers["HX-Push-Url"] = url_for(".index", **state.args())
        return response
    return render_template("audit/index.html", actors=queries.actors(g.tenant.id), actions=queries.ACTIONS,
                           types=queries.RESOURCE_TYPES, retention_days=retention.retention_days(g.tenant.settings),
                           **context)


@bp.route("/retention", methods=["GET", "POST"])
@requires(Permission.AUDIT_MANAGE)
def retention_settings():
    current = retention.retention_days(g.tenant.settings)
    form = RetentionForm(data={"days": current} if request.method == "GET" else None)
    if form.validate_on_submit():
        try:
            retention.set_retention(g.tenant, current_user.id, form.days.data)
        except RuleViolation as exc:
            db.session.rollback()
            form.days.errors.append(exc.message)
        else:
            flash(f"Audit entries are now kept for {form.days.data} days.", "success")
            return redirect(url_for(".index"), 303)
    status = 422 if request.method == "POST" else 200
    return render_template("audit/retention.html", form=form, current=current), status


@bp.get("/export.csv")
@requires(Permission.AUDIT_VIEW)
def export_csv():
    return _export("csv")


@bp.get("/export.jsonl")
@requires(Permission.AUDIT_VIEW)
def export_jsonl():
    return _export("jsonl")


def _export(fmt: str) -> Response:
    state = queries.AuditFilter.from_args(request.args)
    # Written in the request's transaction, committed at the edge before the body streams.
    audit.record(g.tenant.id, current_user.id, "audit.export", "audit", None, format=fmt,
                 filter=state.describe())
    mimetype, extension = export.FORMATS[fmt]
    filename = f"audit-{g.tenant.slug}-{date.today():%Y%m%d}.{extension}"
    return Response(stream_with_context(export.lines(g.tenant.id, state, fmt)), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})
