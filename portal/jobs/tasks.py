"""The engine's own upkeep: jobs of a worker that died go back to the queue; finished jobs are removed
after JOBS_RETENTION_DAYS (failed ones stay until someone retries or removes them)."""
from __future__ import annotations

import logging

from procrastinate import JobContext

from .engine import flask_app, jobs

log = logging.getLogger("portal.jobs")


@jobs.periodic(cron="* * * * *", periodic_id="jobs.requeue_stalled")
@jobs.task(name="jobs.requeue_stalled", queueing_lock="jobs.requeue_stalled", pass_context=True)
async def requeue_stalled(context: JobContext, timestamp: int) -> int:
    """A worker that stopped sending heartbeats (killed, machine lost) left its jobs 'doing'."""
    stalled = list(await context.app.job_manager.get_stalled_jobs(seconds_since_heartbeat=60))
    for job in stalled:
        log.warning("job %s (%s) was left running by a lost worker: back to the queue", job.id, job.task_name)
        await context.app.job_manager.retry_job(job)
    return len(stalled)


@jobs.periodic(cron="41 * * * *", periodic_id="jobs.remove_old")
@jobs.task(name="jobs.remove_old", queueing_lock="jobs.remove_old", pass_context=True)
async def remove_old(context: JobContext, timestamp: int) -> None:
    await context.app.job_manager.delete_old_jobs(nb_hours=24 * flask_app().config["JOBS_RETENTION_DAYS"])
    # Error notes of jobs that are gone (removed, or retried and succeeded, then removed).
    await context.app.connector.execute_query_async(
        "DELETE FROM job_errors e WHERE NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE j.id = e.job_id)")
