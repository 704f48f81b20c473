"""Required single sign-on: a password sign-in to an account whose email domain an organization
has verified and set to "require single sign-on" (with an enabled connection) is refused. The
break-glass exception: an owner of that organization may still use the password (so a broken
provider cannot lock the organization out); it is audited there and shown as a warning."""
from __future__ import annotations

from flask import flash, g, url_for
from sqlalchemy import select

from .. import audit
from ..database.context import tenant_scope, user_scope
from ..extensions import db
from ..tenancy import roles
from ..tenancy.models import Membership
from . import domains


def password_refusal(user) -> str | None:
    """None when `user` (whose password has just checked out) may sign in with it; else why not."""
    route = domains.route_for_email(user.email)
    if route is None or not route.require_sso or route.connection_id is None:
        return None
    with user_scope(db.session, user.id):  # their own memberships (membership_self_read)
        owner = db.session.scalar(select(Membership.id).where(Membership.tenant_id == route.tenant_id,
                                                              Membership.user_id == user.id, roles.owner_condition()))
    domain = user.email.rpartition("@")[2]
    if owner is None:
        return (f"{route.name} requires single sign-on for {domain} addresses: sign in with your organization's "
                "provider instead of a password.")
    with tenant_scope(db.session, route.tenant_id, actor=None):
        audit.record(route.tenant_id, user.id, "sso.break_glass", "user", user.id, email=user.email, domain=domain)
    g.sso_break_glass = (f"Break-glass sign-in: {route.name} requires single sign-on for {domain}, and you signed "
                         "in with a password as an owner. This is recorded in the audit log. Use single sign-on "
                         "once it works again.")
    return None


def flash_warning() -> None:
    """The break-glass warning, once the sign-in has rotated the session (which drops flashes)."""
    message = g.pop("sso_break_glass", None)
    if message:
        flash(message, "warning")


def sso_url(email: str, target: str | None) -> str:
    return url_for("sso_org.start", email=email, next=target)
