"""/admin/jobs: queued, running and failed jobs, with the last error and a retry button."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from ..extensions import db
from ..jobs import queries
from ..rules import RuleViolation
from .views import bp


@bp.get("/jobs")
def jobs():
    status = request.args.get("status", "failed")
    if status not in queries.STATUSES:
        abort(404)
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before <= queries.MAX_ID:
        abort(404)
    rows, next_before = queries.page(status, before)
    return render_template("admin/jobs.html", jobs=rows, status=status, statuses=queries.STATUSES,
                           counts=queries.counts(), next_before=next_before)


@bp.post("/jobs/<int:job_id>/retry")
def retry_job(job_id: int):
    if job_id > queries.MAX_ID:
        abort(404)
    try:
        with db.session.begin_nested():  # a refused retry leaves nothing behind
            task = queries.retry_failed(job_id)
    except RuleViolation as exc:
        flash(exc.message, "error")
    else:
        flash(f"Job {job_id} ({task}) is queued again.", "success")
    return redirect(url_for("admin.jobs", status="failed"), 303)
