"""Keep each job's last error: procrastinate records only statuses."""
from __future__ import annotations

import logging

log = logging.getLogger("portal.jobs")

UPSERT = """
INSERT INTO job_errors (job_id, attempt, error) VALUES (%(job_id)s, %(attempt)s, %(error)s)
ON CONFLICT (job_id) DO UPDATE SET attempt = EXCLUDED.attempt, error = EXCLUDED.error, failed_at = now()
"""


async def record_errors(call_next, context, worker):
    try:
        return await call_next()
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"[:2000]
        try:
            await context.app.connector.execute_query_async(UPSERT, job_id=context.job.id,
                                                            attempt=context.job.attempts + 1, error=text)
        except Exception:  # the job's own outcome matters more than its note
            log.exception("could not record the error of job %s", context.job.id)
        raise
