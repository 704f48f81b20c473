"""Account services. They change state and flush; the request edge commits."""
from __future__ import annotations

from sqlalchemy import func, select

from ..extensions import db
from . import lifecycle
from .models import User
from .passwords import hash_password, needs_rehash, verify_password


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == normalise_email(email)))


def check_password(email: str, password: str) -> tuple[User | None, str]:
    """(user, "ok") for valid credentials, else (the account if any, reason). An account that may
    not sign in gives its lifecycle reason ("suspended", "deletion_pending", ...) only after the
    right password. Unknown emails cost a hash too, so timing does not tell them apart."""
    user = find_user_by_email(email)
    ok = verify_password(user.password_hash if user else None, password)
    if user is None:
        return None, "unknown_account"
    if not ok:
        return user, "bad_password"
    refused = lifecycle.refusal(user)
    if refused:
        return user, refused[0]
    if needs_rehash(user.password_hash):  # parameters changed since this hash was made
        user.password_hash = hash_password(password)
    return user, "ok"


def create_user(email: str, name: str, password: str | None, **fields) -> User:
    given, family = lifecycle.split_name(name)
    user = User(email=normalise_email(email), name=name.strip(), given_name=given, family_name=family,
                password_hash=hash_password(password) if password else None, **fields)
    db.session.add(user)
    db.session.flush()  # the id is needed by the caller's memberships
    return user
