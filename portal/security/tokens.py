"""Single-use account links (password reset, email verification): random tokens from
`secrets`, only their SHA-256 stored, short-lived, consumed by POST."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from uuid import UUID

from sqlalchemy import func, select, update

from ..accounts.models import User
from ..extensions import db
from .models import AccountToken, TokenPurpose

LIFETIME = {TokenPurpose.RESET_PASSWORD: timedelta(hours=1), TokenPurpose.VERIFY_EMAIL: timedelta(hours=24)}


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def issue(user: User, purpose: TokenPurpose, new_email: str | None = None) -> str:
    """A new link token; earlier unused ones for the same purpose stop working."""
    db.session.execute(update(AccountToken).where(
        AccountToken.user_id == user.id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None))
        .values(used_at=func.now()))
    token = secrets.token_urlsafe(32)
    db.session.add(AccountToken(user_id=user.id, purpose=purpose, token_hash=_hash(token), new_email=new_email,
                                expires_at=datetime.now(timezone.utc) + LIFETIME[purpose]))
    return token


def find(token: str, purpose: TokenPurpose) -> AccountToken | None:
    """The usable token record (unused, unexpired), or None."""
    if not token or len(token) > 200:
        return None
    return db.session.scalar(select(AccountToken).where(
        AccountToken.token_hash == _hash(token), AccountToken.purpose == purpose,
        AccountToken.used_at.is_(None), AccountToken.expires_at > func.now()))


def consume(record: AccountToken) -> bool:
    """Mark used in one guarded statement: of two racing requests, one wins."""
    return db.session.execute(update(AccountToken).where(
        AccountToken.id == record.id, AccountToken.used_at.is_(None)).values(used_at=func.now())
        .returning(AccountToken.id)).scalar() is not None


def end_all(user_id: UUID, tenant_id: UUID | None) -> int:
    """accounts.lifecycle's ender: the account's emailed links (reset, email change) stop working."""
    if tenant_id is not None:
        return 0
    return db.session.execute(update(AccountToken).where(
        AccountToken.user_id == user_id, AccountToken.used_at.is_(None)).values(used_at=func.now())).rowcount
