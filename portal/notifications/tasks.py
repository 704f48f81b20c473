"""The worker's notification jobs: the emails of one notify() call, and the daily digest."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import func, select

from ..database.context import user_scope
from ..extensions import db
from ..jobs.engine import flask_app, jobs
from .kinds import Kind


@jobs.task(name="notifications.email", retry=5)
def email(kind: str, params: dict, link: str | None, recipients: list, base_url: str = "") -> int:
    """Queue one outbox message per recipient (each then has its own mail.send job)."""
    from .emails import send_one
    app = flask_app()
    with app.app_context():
        try:
            base = app.config["BASE_URL"]  # base_url: from jobs queued before BASE_URL always had a value
            for user_id, address in recipients:
                send_one(UUID(user_id), address, Kind(kind), params, link, base)
            db.session.commit()
            return len(recipients)
        finally:
            db.session.remove()


@jobs.periodic(cron="0 7 * * *", periodic_id="notifications.digest")
@jobs.task(name="notifications.digest", queueing_lock="notifications.digest")
def digest(timestamp: int) -> int:
    """One email per user with a digest preference and unread notifications of the 24 hours
    before this run's scheduled time (a re-run of the same day covers the same window)."""
    from .emails import send_digest
    app = flask_app()
    until = datetime.fromtimestamp(timestamp, UTC)
    with app.app_context():
        sent = 0
        base = app.config["BASE_URL"]
        for user_id in db.session.scalars(select(func.portal_digest_users())).all():
            with user_scope(db.session, user_id):
                sent += 1 if send_digest(user_id, until - timedelta(days=1), until, base) else 0
            db.session.commit()  # a job is its own edge: one transaction per user
        return sent
