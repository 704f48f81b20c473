"""The worker's mail job: deliver one outbox message, retried with backoff until it is sent,
refused for good (5xx) or out of attempts."""
from __future__ import annotations

from uuid import UUID

from procrastinate import BaseRetryStrategy, RetryDecision

from ..extensions import db
from ..jobs.engine import flask_app, jobs
from .outbox import MAX_ATTEMPTS, backoff, deliver_one


class NotDeliveredYet(Exception):
    """The SMTP server could not take the message now; the job is retried."""


class DeliveryFailed(Exception):
    """The message was refused for good; the job fails and shows on /admin/jobs."""


class MailBackoff(BaseRetryStrategy):
    def get_retry_decision(self, *, exception, job):
        if not isinstance(exception, NotDeliveredYet) or job.attempts + 1 >= MAX_ATTEMPTS:
            return None
        with flask_app().app_context():
            return RetryDecision(retry_in={"seconds": backoff(job.attempts + 1).total_seconds()})


@jobs.task(name="mail.send", retry=MailBackoff())
def send_email(message_id: str) -> None:
    with flask_app().app_context():
        outcome, error = deliver_one(UUID(message_id))
        db.session.commit()
    if outcome == "retry":
        raise NotDeliveredYet(error)
    if outcome == "failed":
        raise DeliveryFailed(error)

