"""Single-use account links (password reset, email verification): random tokens from
`secrets`, only their SHA-256 stored, short-lived, consumed by POST.

The rows are their user's own (RLS `user_own`): a link is issued and ended as its user
(`user_scope`), and found by its token through `portal_account_token`, before anyone is signed in;
using it (`consume`) happens as the user the link names."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from typing import NamedTuple
from uuid import UUID

from sqlalchemy import func, text, update

from ..accounts.models import User
from ..database.context import user_scope
from ..extensions import db
from .models import AccountToken, TokenPurpose

LIFETIME = {TokenPurpose.RESET_PASSWORD: timedelta(hours=1), TokenPurpose.VERIFY_EMAIL: timedelta(hours=24)}


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Link(NamedTuple):
    """A usable link as portal_account_token found it."""
    id: UUID
    user_id: UUID
    new_email: str | None


def issue(user: User, purpose: TokenPurpose, new_email: str | None = None) -> str:
    """A new link token; earlier unused ones for the same purpose stop working. Written as the
    link's user: a reset is asked for before anyone is signed in, or by the console."""
    token = secrets.token_urlsafe(32)
    with user_scope(db.session, user.id):
        db.session.execute(update(AccountToken).where(
            AccountToken.user_id == user.id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None))
            .values(used_at=func.now()))
        db.session.add(AccountToken(user_id=user.id, purpose=purpose, token_hash=_hash(token), new_email=new_email,
                                    expires_at=datetime.now(timezone.utc) + LIFETIME[purpose]))
    return token


def find(token: str, purpose: TokenPurpose) -> Link | None:
    """The usable link (unused, unexpired) whose token this is, whoever is signed in, or None."""
    if not token or len(token) > 200:
        return None
    row = db.session.execute(text("SELECT id, user_id, new_email FROM portal_account_token(:h, CAST(:p AS "
                                  "account_token_purpose))"), {"h": _hash(token), "p": purpose.value}).first()
    return Link(row.id, row.user_id, row.new_email) if row is not None else None


def consume(record: Link) -> bool:
    """Mark used in one guarded statement: of two racing requests, one wins. Run as the link's
    user (RLS): anyone else's transaction finds no row and uses nothing."""
    return db.session.execute(update(AccountToken).where(
        AccountToken.id == record.id, AccountToken.used_at.is_(None)).values(used_at=func.now())
        .returning(AccountToken.id)).scalar() is not None


def end_all(user_id: UUID, tenant_id: UUID | None) -> int:
    """accounts.lifecycle's ender: the account's emailed links (reset, email change) stop working."""
    if tenant_id is not None:
        return 0
    with user_scope(db.session, user_id):
        return db.session.execute(update(AccountToken).where(
            AccountToken.user_id == user_id, AccountToken.used_at.is_(None)).values(used_at=func.now())).rowcount
