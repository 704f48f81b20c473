"""Running a worker: `flask worker` in its own process, or beside the dev server in a thread."""
from __future__ import annotations

import asyncio
import logging
import signal
import threading

import psycopg
import psycopg_pool
from flask import Flask
from procrastinate import PsycopgConnector
from procrastinate.exceptions import ConnectorException

from ..database.provision import libpq_url
from .engine import bind, jobs
from .errors import record_errors

log = logging.getLogger("portal.jobs")
RESTART_SECONDS = 5


async def run_async(app: Flask, *, concurrency: int, wait: bool = True, install_signal_handlers: bool = True) -> None:
    """Fetch and run jobs until cancelled: jobs in flight finish first, up to WORKER_SHUTDOWN_SECONDS;
    a job cut off after that goes back to the queue (jobs.requeue_stalled)."""
    bind(app)
    kwargs = {} if app.config["DB_PREPARED_STATEMENTS"] else {"prepare_threshold": None}
    # A connector (and pool) of its own for each run: a process may run a worker more than once (tests).
    connector = PsycopgConnector(conninfo=libpq_url(app.config["DATABASE_URL"]), kwargs=kwargs, min_size=1,
                                 max_size=concurrency + 2)
    with jobs.replace_connector(connector):
        async with jobs.open_async():
            await jobs.run_worker_async(
                concurrency=concurrency, wait=wait, install_signal_handlers=install_signal_handlers,
                # NOTIFY wakes the worker at once; behind a transaction-pooling PgBouncer LISTEN does not work.
                listen_notify=app.config["DB_PREPARED_STATEMENTS"], fetch_job_polling_interval=2.0,
                update_heartbeat_interval=10, stalled_worker_timeout=60,
                shutdown_graceful_timeout=app.config["WORKER_SHUTDOWN_SECONDS"],
                worker_middleware=[record_errors])


async def supervise(app: Flask, *, concurrency: int, wait: bool = True, handle_signals: bool = True) -> None:
    """Run the worker until cancelled (SIGINT/SIGTERM cancel it: jobs in flight finish first). A worker
    that stops on its own lost the database: wait and start again rather than die with it."""
    if handle_signals:
        loop, main = asyncio.get_running_loop(), asyncio.current_task()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, main.cancel)
    while True:
        try:
            await run_async(app, concurrency=concurrency, wait=wait, install_signal_handlers=False)
            if not wait:
                return
            log.warning("job worker stopped on its own (database gone?); starting again in %s s", RESTART_SECONDS)
        except (ConnectorException, psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            log.warning("job worker lost the database (%s); starting again in %s s", exc, RESTART_SECONDS)
        await asyncio.sleep(RESTART_SECONDS)


def run(app: Flask, *, concurrency: int, wait: bool = True) -> None:
    try:
        asyncio.run(supervise(app, concurrency=concurrency, wait=wait))
    except asyncio.CancelledError:
        log.info("job worker stopped")


class WorkerThread(threading.Thread):
    """A worker beside another server in the same process (`make run`, tests): `stop()` ends it
    the way a signal would."""

    def __init__(self, app: Flask, concurrency: int = 1):
        super().__init__(name="job-worker", daemon=True)
        self.app, self.concurrency = app, concurrency
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task | None = None
        self.started = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.task = self.loop.create_task(supervise(self.app, concurrency=self.concurrency,
                                                        handle_signals=False))
            self.loop.call_soon(self.started.set)
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # noqa: BLE001 (reported by the owner of the thread)
            self.error = exc
            self.app.logger.exception("the job worker stopped")
        finally:
            self.started.set()
            self.loop.close()

    def stop(self, timeout: float = 30) -> None:
        self.started.wait(5)
        if self.loop and self.task and not self.task.done():
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.join(timeout)
