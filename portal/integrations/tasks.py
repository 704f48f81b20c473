"""The worker's integration jobs: deliver one webhook message (retried with backoff and jitter),
run one JSON source's sync, find the syncs that are due, and prune what is no longer needed."""
from __future__ import annotations

import logging
from uuid import UUID

from procrastinate import BaseRetryStrategy, RetryDecision
from sqlalchemy import text

from ..database.context import tenant_scope
from ..extensions import db
from ..jobs.engine import defer_many, flask_app, jobs

log = logging.getLogger("portal.integrations")


class RetryLater(Exception):
    """The endpoint did not take the message; the job runs again after `seconds`."""

    def __init__(self, seconds: float, error: str):
        super().__init__(error)
        self.seconds = seconds


class WebhookBackoff(BaseRetryStrategy):
    def get_retry_decision(self, *, exception, job):
        if not isinstance(exception, RetryLater):
            return None
        return RetryDecision(retry_in={"seconds": exception.seconds})


@jobs.task(name="integrations.deliver", retry=WebhookBackoff())
def deliver(tenant_id: str, entry_id: str) -> str:
    from .delivery import attempt
    with flask_app().app_context(), tenant_scope(db.session, UUID(tenant_id), actor="job:integrations.deliver"):
        outcome = attempt(UUID(tenant_id), UUID(entry_id))
        db.session.commit()
    if outcome.retry_in is not None:
        # The attempt's outcome is committed; the job (same webhook-id) comes back later.
        raise RetryLater(outcome.retry_in, "not delivered yet")
    return outcome.state


@jobs.task(name="integrations.sync")
def sync(tenant_id: str, integration_id: str) -> None:
    from .sources import run
    with flask_app().app_context(), tenant_scope(db.session, UUID(tenant_id), actor="job:integrations.sync"):
        try:
            run(UUID(tenant_id), UUID(integration_id), db.session.commit)
        except Exception:
            db.session.rollback()
            raise


@jobs.periodic(cron="* * * * *", periodic_id="integrations.sync_due")
@jobs.task(name="integrations.sync_due", queueing_lock="integrations.sync_due")
def sync_due(timestamp: int) -> int:
    """Queue the syncs whose time has come (each moves its own next_sync_at when it runs); a
    sync's lock keeps two runs of one source apart."""
    with flask_app().app_context():
        rows = db.session.execute(text("SELECT tenant_id, integration_id FROM portal_integrations_due(200)")).all()
        for row in rows:
            with tenant_scope(db.session, row.tenant_id, actor="job:integrations.sync_due"):
                # Pushed forward now, so the next minute's scan does not queue it again.
                db.session.execute(text("UPDATE integrations SET next_sync_at = now() + interval '10 minutes' "
                                        "WHERE tenant_id = :t AND id = :i"), {"t": row.tenant_id, "i": row.integration_id})
                defer_many("integrations.sync", [{"tenant_id": str(row.tenant_id),
                                                  "integration_id": str(row.integration_id)}],
                           lock=f"integration:{row.integration_id}")
        db.session.commit()
        return len(rows)


@jobs.periodic(cron="29 3 * * *", periodic_id="integrations.prune")
@jobs.task(name="integrations.prune", queueing_lock="integrations.prune")
def prune(timestamp: int) -> None:
    """Inbound webhook ids older than the signature tolerance can never be replayed (their
    timestamp is refused first); log entries older than INTEGRATIONS_LOG_DAYS go."""
    with flask_app().app_context():
        days = flask_app().config["INTEGRATIONS_LOG_DAYS"]
        tenants = db.session.execute(text("SELECT id FROM tenants")).scalars().all()
        for tenant_id in tenants:
            with tenant_scope(db.session, tenant_id, actor="job:integrations.prune"):
                db.session.execute(text("DELETE FROM integration_inbound_ids WHERE tenant_id = :t "
                                        "AND received_at < now() - interval '1 day'"), {"t": tenant_id})
                db.session.execute(text("DELETE FROM integration_log WHERE tenant_id = :t AND created_at < "
                                        "now() - make_interval(days => :d) AND state IN ('succeeded', 'failed')"),
                                   {"t": tenant_id, "d": days})
                db.session.commit()
