"""Deleting one's own account: asked for on /account/data (after re-authentication), refused while
the person is the last owner of an organization, then a grace period (ACCOUNT_DELETION_GRACE_DAYS)
during which signing in offers to cancel it (signin.views.deletion_pending); after it the worker's daily
`accounts.purge` (or `flask users purge`) erases the personal data.

What erasing keeps: the users row, with the name "Deleted user" and a tombstone address
(accounts.lifecycle.tombstone), so that audit rows, tasks, comments and devices still name
someone; the audit rows themselves (a hash chain: the snapshots they recorded stay as they were);
the security events, without their email, network address and browser. What it removes: the
memberships (each through members.services.leave, audited in its organization), sessions, emailed
links, sign-in history, second factor and backup codes, single sign-on links, avatar,
notifications and preferences, exports, what other areas register (accounts.lifecycle.scrubbers),
and any row of a global table that deleting the users row would have cascaded to (passkeys)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import UUID

from flask import current_app
from sqlalchemy import delete, func, select, text

from ..accounts import lifecycle
from ..accounts.models import AccountExport, User, UserAvatar, UserStatus
from ..database.context import tenant_scope, user_scope
from ..extensions import db
from ..mail.outbox import enqueue
from ..members.services import active_owner_count, leave
from ..notifications.models import Notification, NotificationPreference
from ..rules import RuleViolation
from ..security import services as security
from ..tenancy import context_for, roles
from ..tenancy.models import Membership, MembershipStatus
from ..tenants.models import Tenant
from . import export


def memberships(user_id: UUID) -> list[tuple[Tenant, Membership]]:
    """Every membership of the user, active or suspended, in any organization, read as the user
    reads their own (the `membership_self_read` policy)."""
    with user_scope(db.session, user_id):
        return [(t, m) for t, m in db.session.execute(
            select(Tenant, Membership).join(Membership, Membership.tenant_id == Tenant.id)
            # One order for every path that writes to several tenants' audit chains (the console's too).
            .where(Membership.user_id == user_id).order_by(Tenant.name, Tenant.id))]


def last_owned(user_id: UUID) -> list[Tenant]:
    """The organizations the user is the last active owner of: they must hand them over first."""
    owned = []
    for tenant, membership in memberships(user_id):
        if roles.is_owner(membership) and membership.status == MembershipStatus.ACTIVE:
            with tenant_scope(db.session, tenant.id, actor=None):
                if active_owner_count(tenant.id) <= 1:
                    owned.append(tenant)
    return owned


def _refuse_if_last_owner(user_id: UUID) -> None:
    owned = last_owned(user_id)
    if owned:
        names = ", ".join(t.name for t in owned)
        raise RuleViolation(f"You are the last owner of {names}: make someone else owner first.")


def request_deletion(user: User) -> datetime:
    """Deactivate the account now (its sessions and links end) and schedule its erasure after
    the grace period; returns when. The person is emailed the date and how to cancel."""
    if user.status != UserStatus.ACTIVE:
        raise RuleViolation("This account is not active.")
    _refuse_if_last_owner(user.id)
    now = datetime.now(timezone.utc)
    due = now + timedelta(days=lifecycle.grace_days())
    security.change_status(user, UserStatus.DEACTIVATED, by=user.id, reason="Deletion asked for by the person.")
    user.deletion_requested_at, user.deletion_due_at = now, due
    enqueue("account_deletion", user.email, "Your Portal account will be deleted", "account_deletion",
            user=user, due=due)
    return due


def purge(user: User, *, reason: str, only_if_due: bool = False) -> bool:
    """Erase the account's personal data now (see the module's docstring); whether it did.
    `only_if_due`: only a deletion whose grace period has ended (the person may have cancelled
    it a moment ago). Refused (RuleViolation) while the person is the last owner of an
    organization. Flushes, never commits."""
    # The account's row first, as the console's suspension takes it before the audit chains: a
    # suspension and an erasure of one account wait for each other instead of deadlocking.
    # NO KEY: rows that name the account still pass their foreign-key checks meanwhile.
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update(key_share=True))
    db.session.refresh(user, ["status", "deletion_due_at"])
    if user.status == UserStatus.DELETED:
        return False
    if only_if_due and not (user.status == UserStatus.DEACTIVATED and user.deletion_due_at is not None
                            and user.deletion_due_at <= datetime.now(timezone.utc)):
        return False
    _refuse_if_last_owner(user.id)
    for tenant, membership in memberships(user.id):
        with tenant_scope(db.session, tenant.id, actor="account:delete"):
            leave(context_for(tenant, membership))  # audited in the organization as the person leaving
            db.session.flush()  # inside the scope: RLS checks the rows as they are written
    export.remove_files(user.id)
    with user_scope(db.session, user.id):
        for model in (Notification, NotificationPreference, UserAvatar, AccountExport):
            db.session.execute(delete(model).where(model.user_id == user.id))
        db.session.flush()
    user.name, user.given_name, user.family_name = lifecycle.DELETED_USER, "", ""
    user.email = lifecycle.tombstone(user.id)
    user.password_hash = user.totp_secret = user.totp_enabled_at = user.totp_last_step = None
    user.oidc_issuer = user.oidc_subject = user.keycloak_id = None
    user.timezone = user.locale = user.avatar_version = user.last_tenant_id = user.email_verified_at = None
    user.meta = {}
    user.deletion_due_at, user.deleted_at = None, func.now()
    # Access ends (sessions, links, grants) and the event is written with the tombstone address.
    security.change_status(user, UserStatus.DELETED, by=None, reason=reason)
    db.session.flush()  # the status is what the scrubbing function below checks
    for _, scrub in lifecycle.scrubbers:
        scrub(user.id)
    _remove_what_would_cascade(user.id)
    db.session.execute(text("SELECT portal_scrub_security_events(:u)"), {"u": user.id})
    return True


# Global tables whose rows go with their user (ON DELETE CASCADE to users.id) and that the
# serving role may delete from: the kept users row would otherwise keep them alive.
_CASCADING = """
SELECT c.conrelid::regclass::text, a.attname
  FROM pg_constraint c
  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
 WHERE c.contype = 'f' AND c.confrelid = 'public.users'::regclass AND c.confdeltype = 'c'
   AND cardinality(c.conkey) = 1 AND c.conrelid <> 'public.users'::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_attribute t WHERE t.attrelid = c.conrelid AND t.attname = 'tenant_id'
                   AND NOT t.attisdropped)
   AND has_table_privilege(c.conrelid, 'DELETE')
 ORDER BY 1, 2
"""


def _remove_what_would_cascade(user_id: UUID) -> None:
    """What deleting the users row would have removed, removed without deleting it: a personal
    table another area added without registering a scrubber (passkeys, identity links) is
    covered too. Tenant tables are left to the memberships' removal; read in the person's own
    RLS scope."""
    quote = db.session.get_bind().dialect.identifier_preparer.quote
    with user_scope(db.session, user_id):
        for table, column in db.session.execute(text(_CASCADING)).all():
            name = ".".join(quote(part) for part in table.split("."))
            removed = db.session.execute(text(f"DELETE FROM {name} WHERE {quote(column)} = :u"), {"u": user_id})
            if removed.rowcount:
                current_app.logger.info("erased %s row(s) of %s for deleted account %s", removed.rowcount, table,
                                        user_id)


def due() -> list[UUID]:
    return list(db.session.scalars(select(User.id).where(
        User.status == UserStatus.DEACTIVATED, User.deletion_due_at <= func.now()).order_by(User.deletion_due_at)))


def purge_due() -> tuple[list[UUID], dict[UUID, str]]:
    """Purge every account past its grace period, one transaction each: (purged, refused with why)."""
    ids = due()
    db.session.rollback()
    purged, refused = [], {}
    for user_id in ids:
        user = db.session.get(User, user_id)
        try:
            done = purge(user, reason="Deleted at the person's request, after the grace period.", only_if_due=True)
        except RuleViolation as exc:
            db.session.rollback()
            refused[user_id] = exc.message
            continue
        db.session.commit()
        if done:
            purged.append(user_id)
    return purged, refused
