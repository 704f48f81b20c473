"""The keyring's job: re-seal an owner's values with its newest data key, then retire the old ones
(`flask keys rotate` queues it)."""
from __future__ import annotations

from uuid import UUID

from ..extensions import db
from ..jobs.engine import flask_app, jobs


@jobs.task(name="keys.reseal", retry=5)
def reseal(tenant_id: str = "") -> dict:
    """tenant_id "" is the installation's own key."""
    from .rotation import reseal as run
    app = flask_app()
    with app.app_context():
        try:
            result = run(UUID(tenant_id) if tenant_id else None, batch=app.config["KEYS_RESEAL_BATCH"])
            app.logger.info("keys: %s re-sealed with version %s (%s values, %s unreadable), retired %s",
                            tenant_id or "installation", result.version, result.resealed, result.unreadable,
                            result.retired or "nothing")
            return {"version": result.version, "resealed": result.resealed, "unreadable": result.unreadable,
                    "retired": result.retired}
        finally:
            db.session.remove()
