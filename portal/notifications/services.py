"""Telling people what concerns them: `notify` writes one row per recipient in one statement
(portal_notify, migration 0012) and queues one job for the emails; the bell, the list and
marking read; preferences and one-click unsubscribe tokens.

Services never commit. Reads and writes of notifications go through RLS on app.user_id: a user
reaches only their own rows, whatever tenant the request is in.
"""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import (
    Select,
    String,
    Uuid,
    and_,
    column,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert

from ..extensions import db
from ..jobs.engine import defer
from .kinds import CATALOGUE, Channel, Kind
from .models import Notification, NotificationPreference

PAGE_SIZE = 30
COUNT_CAP = 100  # the bell shows "99+" past this: the count never reads more index entries than that
LATEST = 8


def notify(tenant_id: UUID | None, recipients: list[UUID] | Select, kind: Kind | str, params: dict,
           link: str | None) -> int:
    """Tell `recipients` (user ids, or a Select of user ids run under the caller's RLS) about an
    event; returns how many are emailed at once. One INSERT ... SELECT for any number of
    recipients, honouring each one's preference; within a tenant, only its active members.
    The emails (if any) are one job: the worker renders and queues them in the outbox."""
    kind = Kind(kind)  # also "task.assigned", as the tasks area names it
    info = CATALOGUE[kind]
    if not isinstance(recipients, Select) and not recipients:
        return 0
    # Messages are text: a date or a UUID is kept as it prints (JSON in the row and in the job).
    params = {k: v if v is None or isinstance(v, (str, int, float, bool)) else str(v) for k, v in params.items()}
    if isinstance(recipients, Select):
        users = func.array(recipients.scalar_subquery())  # ARRAY(SELECT ...): evaluated in the same statement
    else:
        users = literal(list(dict.fromkeys(recipients)), ARRAY(Uuid))
    called = func.portal_notify(literal(tenant_id, Uuid), kind.value, literal(params, JSONB), literal(link, String),
                                info.default.value, info.security, users)
    fn = called.table_valued(column("user_id", Uuid), column("email", String))
    rows = db.session.execute(select(fn.c.user_id, fn.c.email)).all()
    if rows:
        defer("notifications.email", kind=kind.value, params=params, link=link,
              recipients=[[str(r.user_id), r.email] for r in rows], base_url=base_url())
    return len(rows)


def actor_name(ctx) -> str:
    """Who did it, for a message: the member's name, or an API client's (no membership)."""
    if ctx.membership is not None:
        return ctx.membership.user.display_name
    client = getattr(ctx, "client", None)
    return f"{client.kind} {client.name}" if client is not None else "Someone"


def base_url() -> str:
    return current_app.config["BASE_URL"]  # never the request's Host header


# --- reading -----------------------------------------------------------------------------------

def _own(user_id: UUID):
    # RLS already limits rows to app.user_id; the explicit filter lets the planner use the index.
    return Notification.user_id == user_id


def unread_count(user_id: UUID) -> int:
    """The bell: one index-only scan of ix_notifications_unread, capped at COUNT_CAP."""
    capped = select(Notification.id).where(_own(user_id), Notification.read_at.is_(None)).limit(COUNT_CAP).subquery()
    return db.session.scalar(select(func.count()).select_from(capped)) or 0


def latest(user_id: UUID, limit: int = LATEST) -> list[Notification]:
    return list(db.session.scalars(select(Notification).where(_own(user_id))
                                   .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)))


def cursor_of(n: Notification) -> str:
    return f"{n.created_at.isoformat()}_{n.id}"


def parse_cursor(value: str | None) -> tuple[datetime, UUID] | None:
    if not value:
        return None
    try:
        at, _, nid = value.partition("_")
        return datetime.fromisoformat(at), UUID(nid)
    except ValueError:
        return None


def page(user_id: UUID, before: str | None = None, size: int = PAGE_SIZE) -> tuple[list[Notification], str | None]:
    """A keyset page, newest first: the rows and the cursor of the next (older) page, if any."""
    stmt = select(Notification).where(_own(user_id))
    cursor = parse_cursor(before)
    if cursor:
        at, nid = cursor
        stmt = stmt.where(or_(Notification.created_at < at, and_(Notification.created_at == at, Notification.id < nid)))
    rows = list(db.session.scalars(stmt.order_by(Notification.created_at.desc(), Notification.id.desc())
                                   .limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    return rows, (cursor_of(rows[-1]) if more and rows else None)


def mark_read(user_id: UUID, notification_id: UUID) -> Notification | None:
    """The notification, read; None when it is not the user's (RLS hides everyone else's)."""
    return db.session.scalars(update(Notification).where(_own(user_id), Notification.id == notification_id)
                              .values(read_at=func.coalesce(Notification.read_at, func.now()))
                              .returning(Notification)).first()


def mark_all_read(user_id: UUID) -> int:
    return db.session.execute(update(Notification).where(_own(user_id), Notification.read_at.is_(None))
                              .values(read_at=func.now())).rowcount


# --- preferences -------------------------------------------------------------------------------

def preferences(user_id: UUID) -> dict[Kind, Channel]:
    """Every kind with the user's channel (their choice, else the kind's default)."""
    chosen = dict(db.session.execute(select(NotificationPreference.kind, NotificationPreference.channel)
                                     .where(NotificationPreference.user_id == user_id)).all())
    result = {}
    for kind, info in CATALOGUE.items():
        value = chosen.get(kind.value)
        result[kind] = info.default if info.security or value not in set(Channel) else Channel(value)
    return result


def set_preferences(user_id: UUID, choices: dict[Kind, Channel]) -> dict[str, tuple[str, str]]:
    """Store the user's choices (security kinds are not theirs to change); returns what changed
    as {kind: (before, after)}, for the caller's security event."""
    current = preferences(user_id)
    changed = {k.value: (current[k].value, c.value) for k, c in choices.items()
               if not CATALOGUE[k].security and current[k] != c}
    if changed:
        stmt = insert(NotificationPreference).values(
            [{"user_id": user_id, "kind": k, "channel": after} for k, (_, after) in changed.items()])
        db.session.execute(stmt.on_conflict_do_update(
            index_elements=["user_id", "kind"], set_={"channel": stmt.excluded.channel, "updated_at": func.now()}))
    return changed


def without_email(channel: Channel) -> Channel:
    """The channel once emails of the kind stop (what an unsubscribe link does)."""
    return {Channel.BOTH: Channel.PORTAL, Channel.DIGEST: Channel.PORTAL, Channel.EMAIL: Channel.NONE}.get(channel, channel)


# --- unsubscribe tokens ------------------------------------------------------------------------

def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="notifications-unsubscribe")


DIGEST = "digest"  # an unsubscribe token for the daily digest (every kind set to digest)


def unsubscribe_token(user_id: UUID, what: str) -> str:
    """Signed, not encrypted, no expiry: the link in an email keeps working (RFC 8058)."""
    return _serializer().dumps({"u": str(user_id), "k": str(what)})


def read_unsubscribe_token(token: str) -> tuple[UUID, Kind | str] | None:
    """(user id, kind or DIGEST) of a token this portal signed, else None (tampered, or for a
    security kind, which cannot be turned off)."""
    try:
        data = _serializer().loads(token)
        user_id, what = UUID(data["u"]), data["k"]
        kind: Kind | str = DIGEST if what == DIGEST else Kind(what)
    except (BadSignature, KeyError, TypeError, ValueError):
        return None
    if kind != DIGEST and CATALOGUE[kind].security:
        return None
    return user_id, kind


def unsubscribe(user_id: UUID, what: Kind | str) -> dict[str, tuple[str, str]]:
    """Stop the emails of a kind (or the digest); the bell keeps them. Returns what changed."""
    current = preferences(user_id)
    kinds = [k for k, c in current.items() if c == Channel.DIGEST] if what == DIGEST else [Kind(what)]
    return set_preferences(user_id, {k: without_email(current[k]) for k in kinds})
