"""/dev/mail: the development mailbox (404 in production), so invitation links can be clicked
without an SMTP server."""
from __future__ import annotations

from uuid import UUID

from flask import Blueprint, abort, current_app, render_template, request
from sqlalchemy import select

from ..extensions import db
from .models import OutboxMessage
from .outbox import body

bp = Blueprint("devmail", __name__, url_prefix="/dev/mail")
PAGE_SIZE = 50


@bp.before_request
def _not_in_production():
    if current_app.config["PORTAL_ENV"] == "production":
        abort(404)


@bp.get("/")
def index():
    before = request.args.get("before", "")
    stmt = select(OutboxMessage).order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    if before:
        try:
            anchor = db.session.get(OutboxMessage, UUID(before))
        except ValueError:
            anchor = None
        if anchor is not None:
            stmt = stmt.where(OutboxMessage.created_at < anchor.created_at)
    rows = db.session.scalars(stmt.limit(PAGE_SIZE + 1)).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render_template("mail/index.html", messages=rows,
                           next_before=rows[-1].id if more else None,
                           smtp=bool(current_app.config["SMTP_URL"]))


@bp.get("/<uuid:message_id>")
def show(message_id: UUID):
    message = db.session.get(OutboxMessage, message_id) or abort(404)
    return render_template("mail/show.html", message=message, content=body(message))
