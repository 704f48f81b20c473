"""The email outbox: enqueue inside the causing transaction, deliver after commit.

Delivery takes one due message at a time with FOR UPDATE SKIP LOCKED and holds
the lock while talking to the SMTP server, so concurrent workers never send the
same message; a message marked sent is never sent again.
"""
from __future__ import annotations

import json
import logging
import secrets
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from cryptography.fernet import InvalidToken
from flask import current_app, g, render_template
from sqlalchemy import func, select

from ..crypto import fernet
from ..extensions import db
from . import smtp
from .models import OutboxMessage, OutboxStatus

log = logging.getLogger("portal.mail")
MAX_ATTEMPTS = 12


def enqueue(kind: str, recipient: str, subject: str, template: str, **context) -> OutboxMessage:
    """Render `template`.txt and .html and queue the message in the current transaction."""
    text = render_template(f"email/{template}.txt", **context)
    html = render_template(f"email/{template}.html", **context)
    domain = current_app.config["MAIL_FROM"].rsplit("@", 1)[-1].strip("> ") or "localhost"
    payload = json.dumps({"text": text, "html": html}).encode()
    message = OutboxMessage(kind=kind, recipient=recipient, subject=subject,
                            payload=fernet("outbox").encrypt(payload),
                            message_id=make_msgid(idstring=secrets.token_hex(8), domain=domain))
    db.session.add(message)
    g.outbox_queued = True
    return message


def body(message: OutboxMessage) -> dict | None:
    """The decrypted text and html, or None once delivered (bodies are erased)."""
    if message.payload is None:
        return None
    try:
        return json.loads(fernet("outbox").decrypt(message.payload))
    except InvalidToken:
        return None


def build(message: OutboxMessage, content: dict) -> EmailMessage:
    email = EmailMessage()
    email["From"] = current_app.config["MAIL_FROM"]
    email["To"] = formataddr(("", message.recipient))
    email["Subject"] = message.subject
    email["Message-ID"] = message.message_id  # stable across retries: receivers can de-duplicate
    email.set_content(content["text"])
    email.add_alternative(content["html"], subtype="html")
    return email


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** (attempts - 1), 3600))


def deliver_due(limit: int = 100, *, ignore_backoff: bool = False) -> dict:
    """Send due messages, each in its own transaction. Returns counts."""
    url = current_app.config["SMTP_URL"]
    counts = {"sent": 0, "retry": 0, "failed": 0}
    if not url:
        return counts
    for _ in range(limit):
        stmt = select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.PENDING)
        if not ignore_backoff:
            stmt = stmt.where(OutboxMessage.next_attempt_at <= func.now())
        message = db.session.scalars(stmt.order_by(OutboxMessage.created_at).limit(1)
                                     .with_for_update(skip_locked=True)).first()
        if message is None:
            db.session.rollback()
            break
        content = body(message)
        message.attempts += 1
        try:
            if content is None:
                raise ValueError("the message body cannot be decrypted (was SECRET_KEY changed?)")
            smtp.send(url, build(message, content), timeout=current_app.config["SMTP_TIMEOUT"])
        except (OSError, ValueError, smtp.smtplib.SMTPException) as exc:
            message.last_error = f"{type(exc).__name__}: {exc}"[:1000]
            if message.attempts >= MAX_ATTEMPTS or content is None:
                message.status = OutboxStatus.FAILED
                counts["failed"] += 1
            else:
                message.next_attempt_at = func.now() + backoff(message.attempts)
                counts["retry"] += 1
            log.warning("email %s to %s not delivered (attempt %s): %s", message.id, message.recipient,
                        message.attempts, message.last_error)
        else:
            message.status, message.sent_at, message.payload = OutboxStatus.SENT, func.now(), None
            message.last_error = None
            counts["sent"] += 1
        db.session.commit()
        if counts["retry"] or counts["failed"]:
            break  # the server is unhappy: leave the rest for the next run, in order
    return counts
