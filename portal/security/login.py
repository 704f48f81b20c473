"""Completing a sign-in, whatever proved it (password, second factor, single sign-on)."""
from __future__ import annotations

from flask import g, session, url_for
from flask_login import login_user
from sqlalchemy import func

from ..accounts import lifecycle
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


def landing_tenant_slug(user: User) -> str | None:
    """The tenant used last if still a usable membership, else the first by name."""
    from ..tenancy.queries import my_tenants
    rows = [(t, m) for t, m in my_tenants(user.id) if t.is_usable]  # never land in a suspended one
    for tenant, _ in rows:
        if tenant.id == user.last_tenant_id:
            return tenant.slug
    return rows[0][0].slug if rows else None


def home_for(user: User) -> str:
    """Where a signed-in user lands when no `next` page was asked for."""
    slug = landing_tenant_slug(user)
    if slug:
        return url_for("dashboard.index", tenant_slug=slug)
    if user.is_system_admin:
        return url_for("admin.tenants")
    return url_for("switcher.index")


def complete(user: User, method: str) -> None:
    """Rotate: a fresh cookie session and a new server-side record, nothing carried over.
    Every way in ends here, so an account that may not sign in is refused here too (the pages
    check first, to say why); its sessions would not load anyway (portal_request_context)."""
    refused = lifecycle.refusal(user)
    if refused:
        raise lifecycle.AccountUnavailable(*refused)
    set_context(db.session, user_id=user.id)
    session.clear()
    sessions.start(user, session_cap(user))
    login_user(user)
    user.last_login_at = func.now()
    user.login_count = User.login_count + 1  # in SQL: two sign-ins at once both count
    events.record(user.email, success=True, reason="ok", user_id=user.id, method=method)
    g.remember_device = user.email
    session["auth_method"] = method  # what proved it: tenant_policy counts a passkey as two factors


def passkey_session() -> bool:
    """Whether this session's sign-in used a passkey (with user verification: two factors)."""
    return "passkey" in str(session.get("auth_method", "")).split("+")
