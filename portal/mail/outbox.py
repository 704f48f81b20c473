"""The email outbox: enqueue inside the causing transaction, deliver after commit.

Each message gets a `mail.send` job in the same transaction; the worker runs it and
retries it with backoff. Delivery holds the message's row lock while talking to the
SMTP server, so concurrent deliveries never send the same message; a message marked
sent is never sent again. A message that cannot be built, or that the server refuses for
good (5xx), fails at once: its job fails (/admin/jobs), /metrics counts it, and the area
that queued it tells whoever sent it (`failure_hooks`).
"""
from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from uuid import uuid4

from flask import current_app, g, render_template
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import distinct_on

from .. import keys
from ..extensions import db
from ..jobs.engine import defer
from ..oneline import one_line
from . import smtp
from .models import Failure, OutboxMessage, OutboxStatus

log = logging.getLogger("portal.mail")
MAX_ATTEMPTS = 12
SUBJECT_MAX = 300  # the column's length

# kind -> what its area does when a message of that kind fails for good (the invitations area marks
# the invitation and tells its sender); registered by the area, so mail imports no area.
# Bodies are sealed with the installation's data key, bound to their message (not SECRET_KEY).
keys.register("email_outbox", "payload", tenant_column=None)

failure_hooks: dict[str, Callable[[OutboxMessage], None]] = {}


def enqueue(kind: str, recipient: str, subject: str, template: str, *, headers: dict[str, str] | None = None,
            about: tuple | None = None, sender_id=None, **context) -> OutboxMessage:
    """Render `template`.txt and .html and queue the message in the current transaction.
    `headers` are extra header lines (List-Unsubscribe, ...), kept with the encrypted body;
    `about` is (tenant id, row id) of what the message concerns and `sender_id` the user who caused it,
    for telling them if it fails."""
    text = render_template(f"email/{template}.txt", **context)
    html = render_template(f"email/{template}.html", **context)
    domain = current_app.config["MAIL_FROM"].rsplit("@", 1)[-1].strip("> ") or "localhost"
    payload = json.dumps({"text": text, "html": html, **({"headers": headers} if headers else {})}).encode()
    about_tenant_id, about_id = about or (None, None)
    # Subjects are built from names people typed (rows from before the one-line check included).
    message_uuid = uuid4()  # the sealed body names its row
    message = OutboxMessage(id=message_uuid, kind=kind, recipient=recipient, subject=one_line(subject)[:SUBJECT_MAX],
                            payload=keys.seal(payload, tenant_id=None, table="email_outbox", column="payload",
                                              row_id=message_uuid),
                            message_id=make_msgid(idstring=secrets.token_hex(8), domain=domain),
                            about_tenant_id=about_tenant_id, about_id=about_id, sender_id=sender_id)
    db.session.add(message)
    db.session.flush()  # the job below names the row
    defer("mail.send", message_id=str(message.id))
    g.setdefault("outbox_queued", []).append(message.id)  # delivered first, right after the response
    return message


def body(message: OutboxMessage) -> dict | None:
    """The decrypted text and html, or None once delivered (bodies are erased)."""
    if message.payload is None:
        return None
    try:
        return json.loads(keys.unseal(message.payload, tenant_id=None, table="email_outbox", column="payload",
                                      row_id=message.id))
    except keys.Unreadable:
        return None


def build(message: OutboxMessage, content: dict | None) -> EmailMessage:
    """The email, ready to send; raises (ValueError, ...) when it cannot be written. Free text
    (the subject, extra headers) is made one line; the addresses are not rewritten: a broken one
    fails the message rather than sending it somewhere else."""
    if content is None:
        raise ValueError("the message body cannot be decrypted (its data key or master key is gone)")
    email = EmailMessage()
    email["From"] = current_app.config["MAIL_FROM"]
    email["To"] = formataddr(("", message.recipient))
    email["Subject"] = one_line(message.subject)
    email["Message-ID"] = message.message_id  # stable across retries: receivers can de-duplicate
    for name, value in (content.get("headers") or {}).items():
        email[name] = one_line(value)
    email.set_content(content["text"])
    email.add_alternative(content["html"], subtype="html")
    email.as_bytes(policy=policy.SMTP)  # what smtplib will do: a header that cannot be folded fails here
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
    if message is not None and message.status == OutboxStatus.FAILED:
        # Failed for good by another delivery (the one right after the request): the job fails too,
        # so /admin/jobs shows it.
        return "failed", error_of(message)
    if message is None or message.status != OutboxStatus.PENDING or not current_app.config["SMTP_URL"]:
        return "done", None
    outcome = attempt(message)
    return outcome, (error_of(message) if outcome == "failed" else message.last_error)


def error_of(message: OutboxMessage) -> str:
    """A failed message's reason and last error, as /admin/jobs shows it."""
    return f"{message.failure or 'failed'}: {message.last_error or ''}"


def permanent(exc: Exception) -> bool:
    """A 5xx answer (or refused recipients) will not change by retrying."""
    if isinstance(exc, smtp.smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtp.smtplib.SMTPNotSupportedError):  # e.g. an address that needs SMTPUTF8
        return True
    return isinstance(exc, smtp.smtplib.SMTPResponseException) and exc.smtp_code >= 500


def describe(exc: Exception) -> str:
    if isinstance(exc, smtp.smtplib.SMTPRecipientsRefused) and exc.recipients:
        code, detail = next(iter(exc.recipients.values()))  # one recipient per message
        detail = detail.decode(errors="replace") if isinstance(detail, bytes) else detail
        return f"{type(exc).__name__}: SMTP {code} {detail}"
    if isinstance(exc, smtp.smtplib.SMTPResponseException):
        detail = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return f"{type(exc).__name__}: SMTP {exc.smtp_code} {detail}"
    return f"{type(exc).__name__}: {exc}"


def attempt(message: OutboxMessage) -> str:
    """One delivery attempt of a locked pending message; records the outcome on the row."""
    message.attempts += 1
    try:
        email = build(message, body(message))
    except Exception as exc:  # noqa: BLE001 (whatever it is, retrying the same message cannot fix it)
        return fail(message, Failure.UNBUILDABLE, describe(exc))
    try:
        smtp.send(current_app.config["SMTP_URL"], email, timeout=current_app.config["SMTP_TIMEOUT"])
    except (OSError, smtp.smtplib.SMTPException, smtp.SmtpConfigError) as exc:  # the server, or its setting
        if permanent(exc):
            return fail(message, Failure.REFUSED, describe(exc))
        if message.attempts >= MAX_ATTEMPTS:
            return fail(message, Failure.EXHAUSTED, describe(exc))
        message.last_error = describe(exc)[:1000]
        log.warning("email %s to %s not delivered (attempt %s, will retry): %s", message.id, message.recipient,
                    message.attempts, message.last_error)
        message.next_attempt_at = func.now() + backoff(message.attempts)
        return "retry"
    except ValueError as exc:  # smtplib refusing the message itself (e.g. several Resent- blocks)
        return fail(message, Failure.UNBUILDABLE, describe(exc))
    message.status, message.sent_at, message.payload = OutboxStatus.SENT, func.now(), None
    message.last_error = None
    return "sent"


def fail(message: OutboxMessage, failure: Failure, error: str) -> str:
    """Fail a message for good and let the area that queued it tell whoever sent it."""
    message.status, message.failure, message.failed_at = OutboxStatus.FAILED, failure.value, func.now()
    message.last_error = error[:1000]
    log.warning("email %s (%s) to %s failed for good (%s, attempt %s): %s", message.id, message.kind,
                message.recipient, failure.value, message.attempts, message.last_error)
    hook = failure_hooks.get(message.kind)
    if hook is not None:
        try:
            with db.session.begin_nested():  # a hook that breaks must not undo the failure itself
                hook(message)
        except Exception:  # noqa: BLE001
            log.exception("telling the sender of email %s that it failed did not work", message.id)
    return "failed"


def failure_text(message: OutboxMessage) -> str:
    """For people: why a failed message was not delivered, with the server's answer if any."""
    text = Failure(message.failure).text if message.failure in set(Failure) else "it could not be delivered"
    detail = (message.last_error or "").partition(": ")[2] if message.failure == Failure.REFUSED else ""
    return f"{text} ({detail})" if detail else text


def failed_about(about_ids: Iterable) -> dict:
    """{about id: its latest message} for the rows whose latest message failed for good (a newer one,
    after a resend, replaces the notice)."""
    ids = list(about_ids)
    if not ids:
        return {}
    latest = (select(OutboxMessage).where(OutboxMessage.about_id.in_(ids))
              .order_by(OutboxMessage.about_id, OutboxMessage.created_at.desc())
              .ext(distinct_on(OutboxMessage.about_id)))
    return {m.about_id: m for m in db.session.scalars(latest) if m.status == OutboxStatus.FAILED}


def make_pending(message_id) -> None:
    """A failed message goes back to pending (an operator retries its job); its body is still there
    unless it was sent. `failure` stays: /metrics counts messages that ever failed for good."""
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id,
                                                   OutboxMessage.status == OutboxStatus.FAILED)
                       .values(status=OutboxStatus.PENDING, next_attempt_at=func.now()))
