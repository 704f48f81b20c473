"""Jobs of the account area: a person's data export, and the daily erasure of accounts whose
deletion grace period has ended."""
from __future__ import annotations

from uuid import UUID

from ..extensions import db
from ..jobs.engine import flask_app, jobs


@jobs.task(name="accounts.export", retry=0)
def export_account(export_id: str, user_id: str) -> None:
    from .export import run
    app = flask_app()
    with app.app_context():
        try:
            run(UUID(export_id), UUID(user_id))
        finally:
            db.session.remove()


@jobs.periodic(cron="37 3 * * *", periodic_id="accounts.purge")
@jobs.task(name="accounts.purge", queueing_lock="accounts.purge")
def purge_accounts(timestamp: int) -> int:
    from .deletion import purge_due
    app = flask_app()
    with app.app_context():
        try:
            purged, refused = purge_due()
        finally:
            db.session.remove()
        if purged:
            app.logger.info("erased %s deleted account(s)", len(purged))
        for user_id, why in refused.items():
            app.logger.warning("account %s is due for erasure but was kept: %s", user_id, why)
        return len(purged)
