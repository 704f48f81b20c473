"""Membership rules: roles, suspension, removal, ownership transfer, leaving.

Services take the tenant and actor explicitly, write their audit row in the
same transaction and never commit. The database backs the last-owner rule with
a deferred constraint trigger; these checks give the clear message first.
"""
from __future__ import annotations

from uuid import UUID

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from .. import audit
from ..accounts.models import User
from ..database.search import contains_pattern
from ..extensions import db
from ..rules import RuleViolation
from ..tenants.models import Tenant
from .models import Membership, MembershipRole, MembershipStatus

ROLE_RANK = {MembershipRole.OWNER: 3, MembershipRole.ADMIN: 2, MembershipRole.MEMBER: 1, MembershipRole.VIEWER: 0}
PAGE_SIZE = 50


def _snapshot(m: Membership) -> dict:
    return {"role": m.role.value, "status": m.status.value}


def lock_tenant(tenant: Tenant) -> None:
    """Serialise owner and seat changes of one tenant (the trigger takes the same lock)."""
    db.session.execute(select(Tenant.id).where(Tenant.id == tenant.id).with_for_update())


def get_membership(tenant: Tenant, user_id: UUID) -> Membership | None:
    return db.session.scalar(select(Membership).where(Membership.tenant_id == tenant.id,
                                                      Membership.user_id == user_id))


def list_members(tenant: Tenant, query: str = "", after: str = "") -> tuple[list[Membership], str | None]:
    """Members ordered by email, keyset-paginated; `query` matches name or email."""
    email = func.lower(User.email)
    stmt = (select(Membership, email.label("email_key")).join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == tenant.id)
            .order_by(email).limit(PAGE_SIZE + 1))
    if query:
        like = contains_pattern(query)
        stmt = stmt.where(or_(email.like(like), func.lower(User.name).like(like)))
    if after:
        stmt = stmt.where(email > func.lower(after))
    rows = db.session.execute(stmt).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    # The position is the database's lower(email), the one it sorts by (Python's lower()
    # differs for some letters, which would skip members).
    return [m for m, _ in rows], (rows[-1].email_key if more else None)


def active_owner_count(tenant: Tenant) -> int:
    return db.session.scalar(select(func.count()).select_from(Membership).where(
        Membership.tenant_id == tenant.id, Membership.role == MembershipRole.OWNER,
        Membership.status == MembershipStatus.ACTIVE)) or 0


def _may_manage(actor: Membership, target: Membership) -> None:
    """Owners manage anyone; admins manage members and viewers only."""
    if actor.role == MembershipRole.OWNER:
        return
    if actor.role == MembershipRole.ADMIN and ROLE_RANK[target.role] < ROLE_RANK[MembershipRole.ADMIN]:
        return
    raise RuleViolation("Only an owner can change an owner or an admin.")


def _keeps_an_owner(tenant: Tenant, target: Membership) -> None:
    if target.role == MembershipRole.OWNER and target.status == MembershipStatus.ACTIVE \
            and active_owner_count(tenant) <= 1:
        raise RuleViolation("An organization needs at least one active owner: make someone else owner first.")


def flush_guarded() -> None:
    """Flush now so the last-owner trigger's verdict surfaces as a clear message.

    The trigger is deferred to commit; SET CONSTRAINTS ... IMMEDIATE checks it here instead.
    """
    db.session.flush()
    try:
        with db.session.begin_nested():
            db.session.execute(db.text("SET CONSTRAINTS tenant_keeps_an_owner IMMEDIATE"))
    except IntegrityError as exc:
        raise RuleViolation("An organization needs at least one active owner.") from exc
    db.session.execute(db.text("SET CONSTRAINTS tenant_keeps_an_owner DEFERRED"))


def _change(tenant: Tenant, actor: Membership, target: Membership, action: str, **values) -> Membership:
    """Apply checked values, let the last-owner trigger rule on them, and audit before/after."""
    before = _snapshot(target)
    for name, value in values.items():
        setattr(target, name, value)
    flush_guarded()
    audit.record(tenant.id, actor.user_id, action, "membership", target.user_id, before=before,
                 after=_snapshot(target))
    return target


def change_role(tenant: Tenant, actor: Membership, target: Membership, role: MembershipRole) -> Membership:
    if role == target.role:
        return target
    _may_manage(actor, target)
    if actor.role != MembershipRole.OWNER and ROLE_RANK[role] >= ROLE_RANK[MembershipRole.OWNER]:
        raise RuleViolation("Only an owner can make someone an owner.")
    lock_tenant(tenant)
    if role != MembershipRole.OWNER:
        _keeps_an_owner(tenant, target)
    return _change(tenant, actor, target, "member.role_change", role=role)


def set_status(tenant: Tenant, actor: Membership, target: Membership, status: MembershipStatus) -> Membership:
    if status == target.status:
        return target
    if target.user_id == actor.user_id:
        raise RuleViolation("You cannot suspend yourself; use Leave instead.")
    _may_manage(actor, target)
    lock_tenant(tenant)
    if status != MembershipStatus.ACTIVE:
        _keeps_an_owner(tenant, target)
    action = "member.suspend" if status == MembershipStatus.SUSPENDED else "member.reactivate"
    return _change(tenant, actor, target, action, status=status)


def remove(tenant: Tenant, actor: Membership, target: Membership) -> None:
    if target.user_id == actor.user_id:
        raise RuleViolation("To remove yourself, use Leave.")
    _may_manage(actor, target)
    lock_tenant(tenant)
    _keeps_an_owner(tenant, target)
    before = _snapshot(target) | {"email": target.user.email}
    db.session.delete(target)
    flush_guarded()
    audit.record(tenant.id, actor.user_id, "member.remove", "membership", target.user_id, before=before)


def leave(tenant: Tenant, actor: Membership) -> None:
    lock_tenant(tenant)
    if actor.role == MembershipRole.OWNER and actor.status == MembershipStatus.ACTIVE \
            and active_owner_count(tenant) <= 1:
        raise RuleViolation("You are the last owner: transfer ownership before leaving.")
    before = _snapshot(actor)
    db.session.delete(actor)
    flush_guarded()
    audit.record(tenant.id, actor.user_id, "member.leave", "membership", actor.user_id, before=before)


def transfer_ownership(tenant: Tenant, actor: Membership, target: Membership) -> None:
    """The actor (an owner) makes `target` owner and becomes admin, in one transaction."""
    if actor.role != MembershipRole.OWNER:
        raise RuleViolation("Only an owner can transfer ownership.")
    if target.user_id == actor.user_id:
        raise RuleViolation("You already own this organization.")
    if target.status != MembershipStatus.ACTIVE:
        raise RuleViolation("Ownership can only go to an active member.")
    lock_tenant(tenant)
    before = {"from": _snapshot(actor), "to": _snapshot(target)}
    target.role = MembershipRole.OWNER
    actor.role = MembershipRole.ADMIN
    flush_guarded()
    audit.record(tenant.id, actor.user_id, "member.transfer_ownership", "membership", target.user_id,
                 before=before, after={"from": _snapshot(actor), "to": _snapshot(target)})
