"""Deferred and scheduled work: the procrastinate engine, `flask worker`, and the tasks' upkeep.
/admin/jobs lives with the other system admin pages (portal/admin/jobs.py)."""
from __future__ import annotations

import click
from flask import Flask, current_app


def init_app(app: Flask) -> None:
    @app.cli.command("worker")
    @click.option("--concurrency", type=int, default=None, help="Jobs run at once (default WORKER_CONCURRENCY).")
    @click.option("--burst", is_flag=True, help="Stop once the queue is empty instead of waiting for jobs.")
    def worker(concurrency: int | None, burst: bool):
        """Run a job worker until SIGINT/SIGTERM (jobs in flight finish first). Run as many as needed."""
        from .worker import run
        app_ = current_app._get_current_object()
        run(app_, concurrency=concurrency or app_.config["WORKER_CONCURRENCY"], wait=not burst)
