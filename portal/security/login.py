"""Completing a sign-in, whatever proved it (password, second factor, single sign-on)."""
from __future__ import annotations

from flask import g, session
from flask_login import login_user
from sqlalchemy import func

from ..accounts.models import User
from ..database.context import set_context
from ..extensions import db
from . import events, sessions


def session_cap(user: User) -> int | None:
    """The tightest concurrent-session cap among the user's organizations' security policies."""
    from ..tenancy.queries import my_tenants
    caps = [policy(t).get("max_sessions") for t, _ in my_tenants(user.id)]
    caps = [int(c) for c in caps if isinstance(c, int) and c > 0]
    return min(caps) if caps else None


def policy(tenant) -> dict:
    security = (tenant.settings or {}).get("security")
    return security if isinstance(security, dict) else {}


def complete(user: User, method: str) -> None:
    """Rotate: a fresh cookie session and a new server-side record, nothing carried over."""
    set_context(db.session, user_id=user.id)
    session.clear()
    sessions.start(user, session_cap(user))
    login_user(user)
    user.last_login_at = func.now()
    events.record(user.email, success=True, reason="ok", user_id=user.id, method=method)
    g.remember_device = user.email
