"""The emails of notifications: one per recipient at once, or one daily digest per user; each
with a one-click unsubscribe link (RFC 8058) for its kind (for a digest: the digest)."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import select

from ..accounts.models import User
from ..extensions import db
from ..mail.outbox import enqueue
from .kinds import CATALOGUE, Channel, Kind, label, message
from .models import Notification, NotificationPreference
from ..words import plural
from .services import DIGEST, unsubscribe_token

UNSUBSCRIBE_PATH = "/notifications/unsubscribe/"


def _unsubscribe(base: str, user_id: UUID, what: str) -> tuple[str, dict[str, str]]:
    url = base + UNSUBSCRIBE_PATH + unsubscribe_token(user_id, what)
    return url, {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def send_one(user_id: UUID, address: str, kind: Kind, params: dict, link: str | None, base: str):
    info = CATALOGUE[kind]
    text = message(kind, params)
    url, headers = (None, None) if info.security else _unsubscribe(base, user_id, kind.value)
    quote = (params or {}).get(info.quote) if info.quote else None  # escaped by the html template
    return enqueue(f"notification.{kind.value}", address, text[:300], "notification", headers=headers,
                   text=text, quote=quote if isinstance(quote, str) and quote.strip() else None,
                   link=(base + link) if link else None, unsubscribe=url, kind_label=label(kind),
                   security=info.security)


def send_digest(user_id: UUID, since: datetime, until: datetime, base: str) -> int:
    """The user's unread notifications of [since, until) of kinds set to digest, in one email.
    Runs as that user (RLS on app.user_id). Returns how many it lists."""
    kinds = select(NotificationPreference.kind).where(NotificationPreference.user_id == user_id,
                                                      NotificationPreference.channel == Channel.DIGEST.value)
    rows = db.session.scalars(select(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None), Notification.created_at >= since,
        Notification.created_at < until, Notification.kind.in_(kinds))
        .order_by(Notification.created_at.desc()).limit(200)).all()
    address = db.session.scalar(select(User.email).where(User.id == user_id, User.is_active))
    if not rows or not address:
        return 0
    items = [{"text": message(n.kind, n.params), "link": (base + n.link) if n.link else None,
              "at": n.created_at} for n in rows]
    url, headers = _unsubscribe(base, user_id, DIGEST)
    enqueue("notification.digest", address, f"Your daily summary: {plural(len(items), 'notification')}", "notification_digest",
            headers=headers, items=items, unsubscribe=url, link=base + "/notifications")
    return len(items)
