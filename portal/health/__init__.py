"""/healthz: 200 after a database round trip, 503 when the database does not answer."""
from __future__ import annotations

from flask import Blueprint, Flask, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="unavailable", database="unreachable"), 503
    return jsonify(status="ok", database="ok"), 200


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
