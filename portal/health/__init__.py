"""/healthz (liveness: the process answers and reaches the database) and /readyz (readiness: the
database answers, its schema is at the code's migration head, and a job worker was seen within a
minute)."""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db

bp = Blueprint("health", __name__)
WORKER_SEEN_WITHIN = 60  # seconds; workers beat every 10 s


@bp.get("/healthz")
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="unavailable", database="unreachable"), 503
    return jsonify(status="ok", database="ok"), 200


@bp.get("/readyz")
def readyz():
    checks = {}
    try:
        revisions = set(db.session.execute(text("SELECT version_num FROM alembic_version")).scalars())
        seconds = db.session.execute(text(
            "SELECT extract(epoch FROM now() - max(last_heartbeat)) FROM procrastinate_workers")).scalar()
    except SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="unavailable", database="unreachable"), 503
    checks["database"] = "ok"
    heads = current_app.extensions["portal_migration_heads"]
    checks["migrations"] = "ok" if revisions == heads else (
        f"database at {', '.join(sorted(revisions)) or 'none'}, code at {', '.join(sorted(heads))}")
    checks["worker"] = ("ok" if seconds is not None and seconds <= WORKER_SEEN_WITHIN else
                        "never seen" if seconds is None else f"last seen {int(seconds)} s ago")
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if ready else "unavailable", **checks), 200 if ready else 503


def _heads(app: Flask) -> set[str]:
    from alembic.script import ScriptDirectory
    with app.app_context():
        return set(ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config()).get_heads())


def init_app(app: Flask) -> None:
    app.extensions["portal_migration_heads"] = _heads(app)
    app.register_blueprint(bp)
