"""Scheduled, daily: month partitions made ahead, and events past retention removed."""
from __future__ import annotations

from ..extensions import db
from ..jobs.engine import flask_app, jobs
from . import retention


@jobs.periodic(cron="17 1 * * *", periodic_id="analytics.partitions")
@jobs.task(name="analytics.partitions", queueing_lock="analytics.partitions")
def make_partitions(timestamp: int) -> int:
    app = flask_app()
    with app.app_context():
        made = retention.ensure_partitions()
        db.session.commit()
        if made:
            app.logger.info("created %s analytics partition(s) ahead", made)
        return made


@jobs.periodic(cron="47 2 * * *", periodic_id="analytics.prune")
@jobs.task(name="analytics.prune", queueing_lock="analytics.prune")
def prune_events(timestamp: int) -> int:
    app = flask_app()
    with app.app_context():
        dropped, rows = retention.prune()
        if dropped or rows:
            app.logger.info("analytics retention: dropped %s, deleted %s row(s)", ", ".join(dropped) or "no month", rows)
        return rows
