"""Reading and retrying jobs for /admin/jobs, through the request's own transaction."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from procrastinate import sql as procrastinate_sql
from sqlalchemy import text

from ..extensions import db
from ..rules import RuleViolation
from .engine import request_connection, request_connector

STATUSES = {"todo": "Queued", "doing": "Running", "failed": "Failed"}
PAGE_SIZE = 50
MAX_ID = 2 ** 63 - 1  # job ids are bigint

_PAGE = text("""
SELECT j.id, j.task_name, j.queue_name, j.status::text AS status, j.attempts, j.scheduled_at, j.args,
       e.error, e.failed_at,
       (SELECT max(ev.at) FROM procrastinate_events ev WHERE ev.job_id = j.id) AS last_event_at
FROM procrastinate_jobs j LEFT JOIN job_errors e ON e.job_id = j.id
WHERE j.status = CAST(:status AS procrastinate_job_status) AND j.id < :before
ORDER BY j.id DESC LIMIT :limit
""")
_COUNTS = text("SELECT status::text, count(*) FROM procrastinate_jobs "
               "WHERE status IN ('todo', 'doing', 'failed') GROUP BY status")


def page(status: str, before: int | None) -> tuple[list, int | None]:
    """One keyset page of jobs in `status`, newest first, and the anchor of the next page."""
    rows = db.session.execute(_PAGE, {"status": status, "before": before or MAX_ID,
                                      "limit": PAGE_SIZE + 1}).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return rows, (rows[-1].id if more else None)


def counts() -> dict[str, int]:
    found = dict(db.session.execute(_COUNTS).all())
    return {status: found.get(status, 0) for status in STATUSES}


# task name -> what to do before a failed job of it runs again, registered by the area that owns
# the task (mail makes a failed email pending again), so the engine imports no area.
retry_hooks: dict[str, Callable[[dict], None]] = {}


def retry_failed(job_id: int) -> str:
    """Queue a failed job again, now. A failed email is made pending again so it is really retried.
    Returns the task name."""
    row = db.session.execute(text("SELECT task_name, status::text AS status, args FROM procrastinate_jobs "
                                  "WHERE id = :id FOR UPDATE"), {"id": job_id}).first()
    if row is None or row.status != "failed":
        raise RuleViolation("Only a failed job can be retried; this one is not failed (any more).")
    hook = retry_hooks.get(row.task_name)
    if hook is not None:
        hook(row.args)
    request_connector.execute_query_all_with_connection(
        request_connection(), procrastinate_sql.queries["retry_job"], job_id=job_id,
        retry_at=datetime.now(timezone.utc), new_priority=None, new_queue_name=None, new_lock=None)
    return row.task_name
