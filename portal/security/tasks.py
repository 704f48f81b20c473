"""Scheduled: prune old sign-in events, ended sessions and stale passkey challenges."""
from __future__ import annotations

from ..extensions import db
from ..jobs.engine import flask_app, jobs
from .services import prune_history


@jobs.periodic(cron="17 3 * * *", periodic_id="security.prune")
@jobs.task(name="security.prune", queueing_lock="security.prune")
def prune(timestamp: int) -> dict:
    app = flask_app()
    with app.app_context():
        counts = prune_history(app.config["SIGNIN_EVENTS_RETENTION_DAYS"], app.config["ENDED_SESSIONS_RETENTION_DAYS"])
        db.session.commit()
        app.logger.info("pruned %(login_events)s sign-in event(s), %(sessions)s session(s) and %(challenges)s "
                        "passkey challenge(s)", counts)
        return counts
