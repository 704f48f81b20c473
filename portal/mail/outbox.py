"""The email outbox: enqueue inside the causing transaction, deliver after commit.

Each message gets a `mail.send` job in the same transaction; the worker runs it and
retries it with backoff. Delivery holds the message's row lock while talking to the
SMTP server, so concurrent deliveries never send the same message; a message marked
sent is never sent again, and a permanent (5xx) refusal fails it at once.
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
from sqlalchemy import func, select, update

from ..crypto import fernet
from ..extensions import db
from ..jobs.engine import defer
from . import smtp
from .models import OutboxMessage, OutboxStatus

log = logging.getLogger("portal.mail")
MAX_ATTEMPTS = 12


def enqueue(kind: str, recipient: str, subject: str, template: str, *, headers: dict[str, str] | None = None,
            **context) -> OutboxMessage:
    """Render `template`.txt and .html and queue the message in the current transaction.
    `headers` are extra header lines (List-Unsubscribe, ...), kept with the encrypted body."""
    text = render_template(f"email/{template}.txt", **context)
    html = render_template(f"email/{template}.html", **context)
    domain = current_app.config["MAIL_FROM"].rsplit("@", 1)[-1].strip("> ") or "localhost"
    payload = json.dumps({"text": text, "html": html, **({"headers": headers} if headers else {})}).encode()
    message = OutboxMessage(kind=kind, recipient=recipient, subject=subject,
                            payload=fernet("outbox").encrypt(payload),
                            message_id=make_msgid(idstring=secrets.token_hex(8), domain=domain))
    db.session.add(message)
    db.session.flush()  # the id comes from the database and the job below names it
    defer("mail.send", message_id=str(message.id))
    g.setdefault("outbox_queued", []).append(message.id)  # delivered first, right after the response
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
    for name, value in (content.get("headers") or {}).items():
        email[name] = value
    email.set_content(content["text"])
    email.add_alternative(content["html"], subtype="html")
    return email


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt: MAIL_RETRY_SECONDS, doubled after each failure, at most an hour."""
    return timedelta(seconds=min(current_app.config["MAIL_RETRY_SECONDS"] * 2 ** (attempts - 1), 3600))


def deliver_due(limit: int = 100, *, ignore_backoff: bool = False) -> dict:
    """Send due messages, each in its own transaction. Returns counts. (`flask outbox deliver`;
    the worker's mail.send jobs are the usual way.)"""
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
        outcome = attempt(message)
        counts[outcome] += 1
        db.session.commit()
        if counts["retry"] or counts["failed"]:
            break  # the server is unhappy: leave the rest for the next run, in order
    return counts


def deliver_one(message_id) -> tuple[str, str | None]:
    """Deliver one message (the mail.send job): ('sent' | 'retry' | 'failed', last error), or 'done'
    when it was already sent or failed. Waits for the row lock, so two deliveries of one message never overlap;
    the caller commits."""
    message = db.session.scalars(select(OutboxMessage).where(OutboxMessage.id == message_id)
                                 .with_for_update()).first()
    if message is None or message.status != OutboxStatus.PENDING or not current_app.config["SMTP_URL"]:
        return "done", None
    return attempt(message), message.last_error


def permanent(exc: Exception) -> bool:
    """A 5xx answer (or refused recipients) will not change by retrying."""
    if isinstance(exc, smtp.smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtp.smtplib.SMTPResponseException) and exc.smtp_code >= 500


def describe(exc: Exception) -> str:
    if isinstance(exc, smtp.smtplib.SMTPResponseException):
        detail = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return f"{type(exc).__name__}: SMTP {exc.smtp_code} {detail}"
    return f"{type(exc).__name__}: {exc}"


def attempt(message: OutboxMessage) -> str:
    """One delivery attempt of a locked pending message; records the outcome on the row."""
    content = body(message)
    message.attempts += 1
    try:
        if content is None:
            raise ValueError("the message body cannot be decrypted (was SECRET_KEY changed?)")
        smtp.send(current_app.config["SMTP_URL"], build(message, content),
                  timeout=current_app.config["SMTP_TIMEOUT"])
    except (OSError, ValueError, smtp.smtplib.SMTPException) as exc:
        message.last_error = describe(exc)[:1000]
        log.warning("email %s to %s not delivered (attempt %s): %s", message.id, message.recipient,
                    message.attempts, message.last_error)
        if message.attempts >= MAX_ATTEMPTS or content is None or permanent(exc):
            message.status = OutboxStatus.FAILED
            return "failed"
        message.next_attempt_at = func.now() + backoff(message.attempts)
        return "retry"
    message.status, message.sent_at, message.payload = OutboxStatus.SENT, func.now(), None
    message.last_error = None
    return "sent"


def make_pending(message_id) -> None:
    """A failed message goes back to pending (an operator retries its job); its body is still there
    unless it was sent."""
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id,
                                                   OutboxMessage.status == OutboxStatus.FAILED)
                       .values(status=OutboxStatus.PENDING, next_attempt_at=func.now()))
