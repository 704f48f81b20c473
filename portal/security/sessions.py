"""Server-side sessions: the signed cookie carries a random id (256 bits); the record
decides whether it is still valid (idle and absolute timeouts, revocation)."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from typing import NamedTuple
from uuid import UUID

from flask import current_app, g, request, session
from sqlalchemy import func, select, text, update

from ..accounts.models import User, UserStatus, UserType
from ..database.context import BOUNDS, adopt, timeouts, user_scope
from ..database.driver import first_row
from ..database.liveness import retrying_once
from ..database.loaded import Loaded, attach
from ..extensions import db
from .models import UserSession

TOUCH_EVERY = timedelta(seconds=60)


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def now() -> datetime:
    return datetime.now(timezone.utc)


def limits() -> tuple[timedelta, timedelta]:
    cfg = current_app.config
    return timedelta(minutes=cfg["SESSION_IDLE_MINUTES"]), timedelta(hours=cfg["SESSION_ABSOLUTE_HOURS"])


def start(user: User, max_sessions: int | None = None) -> UserSession:
    """A new session for `user`; the caller has cleared the old cookie session (rotation)."""
    token = secrets.token_urlsafe(32)
    _, absolute = limits()
    record = UserSession(user_id=user.id, token_hash=_hash(token), expires_at=now() + absolute, reauth_at=now(),
                         ip_address=request.remote_addr, user_agent=(request.user_agent.string or "")[:500] or None)
    db.session.add(record)
    db.session.flush()  # the cap below counts it
    session["sid"] = token
    g.session_record = record
    if max_sessions:
        _cap(user.id, max_sessions)
    return record


def _cap(user_id: UUID, keep: int) -> None:
    """Revoke the oldest active sessions beyond `keep` (a tenant's concurrent-session cap)."""
    active = db.session.scalars(select(UserSession.id).where(
        UserSession.user_id == user_id, UserSession.revoked_at.is_(None), UserSession.expires_at > func.now())
        .order_by(UserSession.created_at.desc())).all()
    if len(active) > keep:
        db.session.execute(update(UserSession).where(UserSession.id.in_(active[keep:])).values(revoked_at=func.now()))


# One round trip for the session record, its user and, on tenant URLs, the tenant and the
# membership (migration 0005). It sets app.user_id (and app.tenant_id) only for a valid session.
# With the request transaction's timeouts (database.conflicts), in the same round trip.
# And, read back, the sites the tenant's entry let a member without sites:see-all read (app.site_ids,
# portal_enter_tenant: the site_scope policies check them).
_REQUEST_CONTEXT = (f"SELECT c.*, current_setting('app.site_ids', true) AS db_site_ids, {BOUNDS} "
                    "FROM portal_request_context(%(token_hash)s, %(user_id)s, %(idle)s, %(slug)s::text) c")


class SignedInUser(Loaded):
    """Flask-Login's current_user for a request whose session was checked: the columns the
    request-context function returned, without an ORM instance in the request's session until
    something needs one (database.loaded.Loaded): code written for a User keeps working, and
    `.orm` gives the mapped instance (a relationship, session.add)."""

    model = User
    __slots__ = ()
    is_authenticated, is_anonymous = True, False
    has_mfa = User.has_mfa
    is_system_admin = User.is_system_admin
    display_name = User.display_name

    def get_id(self) -> str:
        return str(self.id)


class SessionInfo(NamedTuple):
    """The session record's columns as the request-context function returned them."""
    id: UUID
    user_id: UUID
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    reauth_at: datetime | None


def load(user_id: str) -> SignedInUser | None:
    """Flask-Login's user loader: the user only while the cookie's session record is valid.
    On a tenant URL (g.tenant_slug) it also enters the tenant; see tenancy.queries.enter_tenant."""
    token = session.get("sid")
    if not token:
        return None
    try:
        uid = UUID(user_id)
    except ValueError:
        return None
    idle, _ = limits()
    slug = g.get("tenant_slug") or None  # set, and well-formed, on tenant URLs (tenancy._load_tenant)
    values = {"token_hash": _hash(token), "user_id": uid, "idle": int(idle.total_seconds()), "slug": slug,
              **timeouts()}
    # The request's first statement: on a pooled connection that turns out to be dead, once more.
    row = retrying_once(db.session, lambda: first_row(db.session, _REQUEST_CONTEXT, values))
    if row is None:
        session.clear()  # expired or revoked: the browser starts over
        return None
    adopt(user_id=uid)
    user = SignedInUser(id=uid, email=row.u_email, name=row.u_name, user_type=UserType(row.u_type),
                        email_verified_at=row.u_email_verified_at, totp_enabled_at=row.u_totp_enabled_at,
                        last_tenant_id=row.u_last_tenant_id, password_changed_at=row.u_password_changed_at,
                        timezone=row.u_timezone, avatar_version=row.u_avatar_version, locale=row.u_locale,
                        # Only an active account's session loads (portal_request_context): display_name reads it.
                        is_active=True, status=UserStatus.ACTIVE)
    info = g.session_info = SessionInfo(row.s_id, uid, row.s_created_at, row.s_last_seen_at, row.s_expires_at,
                                        row.s_reauth_at)
    if slug is not None:
        from ..tenancy.queries import entered
        entry = entered(row, uid)
        if entry is not None and entry[0].is_readable:
            # The function has set them: later transactions need them too.
            adopt(tenant_id=entry[0].id, site_ids=row.db_site_ids)
        g.tenant_entry = (slug, uid, entry)
    g.session_idle = now() - info.last_seen_at  # before touching: tenant policies may be stricter
    if now() - info.last_seen_at > TOUCH_EVERY:
        current().last_seen_at = now()  # at most once a minute: the record as an ORM instance, flushed
    return user


def current() -> UserSession | None:
    """This request's session record, as an ORM instance (made on first use, without a query)."""
    record = g.get("session_record")
    if record is None and g.get("session_info") is not None:
        info = g.session_info
        record = g.session_record = attach(UserSession, id=info.id, user_id=info.user_id, created_at=info.created_at,
                                           last_seen_at=info.last_seen_at, expires_at=info.expires_at,
                                           reauth_at=info.reauth_at, revoked_at=None)
    return record


def violates(policy: dict) -> bool:
    """Whether this session is too idle or too old for a tenant's stricter policy."""
    idle, absolute = policy.get("idle_timeout_minutes"), policy.get("absolute_timeout_hours")
    if not idle and not absolute:
        return False  # most tenants: nothing to check, and no record to make
    record = g.get("session_info") or current()
    if record is None:
        return False
    if isinstance(idle, int) and idle > 0 and g.get("session_idle", timedelta(0)) > timedelta(minutes=idle):
        return True
    return isinstance(absolute, int) and absolute > 0 and now() - record.created_at > timedelta(hours=absolute)


def recently_authenticated(minutes: int) -> bool:
    record = g.get("session_record") or g.get("session_info")
    return record is not None and record.reauth_at is not None and \
        now() - record.reauth_at < timedelta(minutes=minutes)


def mark_reauthenticated() -> None:
    record = current()
    if record is not None:
        record.reauth_at = now()


def end_current() -> None:
    record = current()
    if record is not None:
        record.revoked_at = now()
    session.clear()


def revoke(user_id: UUID, session_id: UUID) -> bool:
    result = db.session.execute(update(UserSession).where(
        UserSession.user_id == user_id, UserSession.id == session_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=func.now()))
    return result.rowcount == 1


def revoke_all(user_id: UUID, *, except_current: bool = False) -> int:
    stmt = update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    record = current()
    if except_current and record is not None:
        stmt = stmt.where(UserSession.id != record.id)
    return db.session.execute(stmt.values(revoked_at=func.now())).rowcount


def end_all(user_id: UUID, tenant_id: UUID | None) -> int:
    """accounts.lifecycle's ender: every web session of the account. Sessions are not a
    tenant's: ending access in one tenant leaves them (its membership keeps them out of it).
    Run by the console, jobs and commands for someone else: under the account's own policy."""
    if tenant_id is not None:
        return 0
    with user_scope(db.session, user_id):
        return revoke_all(user_id)


def last_activity(user_id: UUID) -> datetime | None:
    """When the person last used the portal: their sessions' last request (touched at most once
    a minute), kept for ENDED_SESSIONS_RETENTION_DAYS after a session ends."""
    return db.session.scalar(select(func.max(UserSession.last_seen_at)).where(UserSession.user_id == user_id))


def activity(user_id: UUID) -> tuple[int, datetime | None]:
    """The console's view of another account: how many sessions are active and when it was last
    used; counts, not rows (portal_account_sessions answers a system admin only)."""
    idle, _ = limits()
    row = db.session.execute(text("SELECT active_sessions, last_activity FROM portal_account_sessions(:u, :i)"),
                             {"u": user_id, "i": int(idle.total_seconds())}).first()
    return (row.active_sessions, row.last_activity) if row is not None else (0, None)


def active_sessions(user_id: UUID) -> list[UserSession]:
    idle, _ = limits()
    return db.session.scalars(select(UserSession).where(
        UserSession.user_id == user_id, UserSession.revoked_at.is_(None), UserSession.expires_at > func.now(),
        UserSession.last_seen_at > func.now() - idle).order_by(UserSession.last_seen_at.desc())).all()
