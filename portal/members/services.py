"""Membership rules: roles, suspension, removal, ownership transfer, leaving.

Services take the request's TenantContext explicitly, write their audit row in the
same transaction and never commit. Which roles an actor may give and whom they may
manage are tenancy.roles' rules; the database backs the last-owner rule with a deferred
constraint trigger, and these checks give the clear message first.
"""
from __future__ import annotations

from uuid import UUID

from sqlalchemy import delete, func, literal, or_, select
from sqlalchemy.exc import IntegrityError

from .. import audit
from ..api.grants import revoke_grants
from ..accounts.models import User
from ..database.conflicts import Refused
from ..database.loaded import mapped
from ..database.search import contains_pattern
from ..events import emit as emit_event, emit_many as emit_events
from ..extensions import db
from ..notifications import Kind, actor_name, notify
from ..rules import RuleViolation
from ..tenancy import TenantContext, roles
from ..tenancy.models import Membership, MembershipStatus, UserRole
from ..tenancy.queries import lock_tenant

PAGE_SIZE = 50


def _snapshot(m: Membership) -> dict:
    return roles.role_of(m).snapshot() | {"status": m.status.value}


def get_membership(ctx: TenantContext, user_id: UUID) -> Membership | None:
    return db.session.scalar(select(Membership).where(Membership.tenant_id == ctx.tenant_id,
                                                      Membership.user_id == user_id))


def list_members(ctx: TenantContext, query: str = "", after: str = "",
                 before: str = "") -> tuple[list[Membership], str | None, str | None]:
    """Members ordered by email, keyset-paginated both ways; `query` matches name or email.
    Returns the page, the position after it (next page) and before it (previous page)."""
    email = func.lower(User.email)
    backwards = bool(before) and not after
    stmt = (select(Membership, email.label("email_key")).join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == ctx.tenant_id)
            .order_by(email.desc() if backwards else email).limit(PAGE_SIZE + 1))
    if query:
        like = contains_pattern(query)
        stmt = stmt.where(or_(email.like(like), func.lower(User.name).like(like)))
    if after:
        stmt = stmt.where(email > func.lower(after))
    elif backwards:
        stmt = stmt.where(email < func.lower(before))
    rows = db.session.execute(stmt).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if backwards:
        rows.reverse()
        if not rows:  # nothing before it (any more): the first page
            return list_members(ctx, query)
        # The position is the database's lower(email), the one it sorts by (Python's lower()
        # differs for some letters, which would skip members).
        return [m for m, _ in rows], rows[-1].email_key, (rows[0].email_key if more else None)
    return ([m for m, _ in rows], (rows[-1].email_key if more else None),
            (rows[0].email_key if after and rows else None))


def count_members(ctx: TenantContext, query: str = "", first: str | None = None) -> tuple[int, int]:
    """(members matching `query`, those of them before the email `first`): one statement.
    A tenant's members are bounded by its plan, so an exact count is cheap."""
    email = func.lower(User.email)
    stmt = (select(func.count(), func.count().filter(email < func.lower(first)) if first else literal(0))
            .select_from(Membership).join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == ctx.tenant_id))
    if query:
        like = contains_pattern(query)
        stmt = stmt.where(or_(email.like(like), func.lower(User.name).like(like)))
    total, before = db.session.execute(stmt).one()
    return total, before


def active_owner_count(tenant_id: UUID) -> int:
    return db.session.scalar(select(func.count()).select_from(Membership).where(
        Membership.tenant_id == tenant_id, roles.owner_condition())) or 0


def _may_manage(ctx: TenantContext, target: Membership) -> None:
    role = roles.role_of(target)
    if not roles.may_manage(ctx, role):
        raise RuleViolation("Only an owner can change an owner." if role.is_owner else
                            f"Only an owner can change members whose role ({role.name}) allows as much as yours.")


def _keeps_an_owner(ctx: TenantContext, target: Membership) -> None:
    if roles.is_owner(target) and target.status == MembershipStatus.ACTIVE \
            and active_owner_count(ctx.tenant_id) <= 1:
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


def _change(ctx: TenantContext, target: Membership, action: str, then=None, **values) -> Membership:
    """Apply checked values, let the last-owner trigger rule on them, and audit before/after
    (`then`, rows that change with them, runs in between: the audit chain is locked last)."""
    before = _snapshot(target)
    for name, value in values.items():
        setattr(target, name, value)
    flush_guarded()
    if then is not None:
        then()
    audit.record(ctx.tenant_id, ctx.user_id, action, "membership", target.user_id, before=before,
                 after=_snapshot(target))
    return target


def change_role(ctx: TenantContext, target: Membership, role: roles.Role) -> Membership:
    """Change the base role (further roles stay: set_further_roles)."""
    if role.key == roles.role_of(target).key:
        return target
    if target.user_id == ctx.user_id and not ctx.is_owner:
        raise RuleViolation("You cannot change your own role; ask an owner.")
    _may_manage(ctx, target)
    if not roles.may_grant(ctx, role):
        raise RuleViolation("Only an owner can make someone an owner." if role.is_owner else
                            f"You cannot give the role {role.name}: it allows more than your own role does.",
                            field="role")
    lock_tenant(ctx.tenant)
    if not role.is_owner:
        _keeps_an_owner(ctx, target)
    before = roles.role_of(target).name

    def no_longer_further():  # a custom role that becomes the base is not also held besides it
        db.session.execute(delete(UserRole).where(UserRole.tenant_id == ctx.tenant_id,
                                                  UserRole.membership_id == target.id,
                                                  UserRole.role_id == role.custom_id))
        roles.forget()
    changed = _change(ctx, target, "member.role_change", then=no_longer_further if role.is_custom else None,
                      **role.columns())
    if target.user_id != ctx.user_id:
        notify(ctx.tenant_id, [target.user_id], Kind.ROLE_CHANGED,
               {"actor": actor_name(ctx), "tenant": ctx.tenant.name, "before": before,
                "after": role.name}, f"/t/{ctx.tenant.slug}/")
    return changed


def set_further_roles(ctx: TenantContext, target: Membership, further: list[roles.Role]) -> Membership:
    """Give exactly these further custom roles besides the base role. Only custom roles (system
    roles nest: the base role says which one); none the actor could not grant (may_grant)."""
    current_role = roles.role_of(target)
    wanted = {r.key: r for r in further if r.key != current_role.key}
    if any(not r.is_custom for r in wanted.values()):
        raise RuleViolation("Further roles are custom roles: the base role is the built-in one.", field="roles")
    held = {r.key for r in current_role.further}
    if set(wanted) == held:
        return target
    if target.user_id == ctx.user_id and not ctx.is_owner:
        raise RuleViolation("You cannot change your own roles; ask an owner.")
    _may_manage(ctx, target)
    # Only what changes is checked: a role someone else gave stays, even if this actor could not give it.
    for key in set(wanted) - held:
        if not roles.may_grant(ctx, wanted[key]):
            raise RuleViolation(f"You cannot give the role {wanted[key].name}: it allows more than your own role does.",
                                field="roles")
    for key in held - set(wanted):
        dropped = next(r for r in current_role.further if r.key == key)
        if not roles.may_grant(ctx, dropped):
            raise RuleViolation(f"You cannot take away the role {dropped.name}: it allows more than your own role does.",
                                field="roles")
    lock_tenant(ctx.tenant)
    before = _snapshot(target)
    roles.hold_further(target, list(wanted.values()))
    after_role = roles.role_of(target)
    audit.record(ctx.tenant_id, ctx.user_id, "member.role_change", "membership", target.user_id, before=before,
                 after=_snapshot(target))
    if target.user_id != ctx.user_id:
        notify(ctx.tenant_id, [target.user_id], Kind.ROLE_CHANGED,
               {"actor": actor_name(ctx), "tenant": ctx.tenant.name, "before": current_role.name,
                "after": after_role.name}, f"/t/{ctx.tenant.slug}/")
    return target


def set_status(ctx: TenantContext, target: Membership, status: MembershipStatus) -> Membership:
    if status == target.status:
        return target
    if target.user_id == ctx.user_id:
        raise RuleViolation("You cannot suspend yourself; use Leave instead.")
    _may_manage(ctx, target)
    lock_tenant(ctx.tenant)
    then = None
    if status != MembershipStatus.ACTIVE:
        _keeps_an_owner(ctx, target)

        def then():  # the apps they allowed stop acting for them, and do not come back with a reactivation
            revoke_grants(target.user_id, tenant_id=ctx.tenant_id, reason="member_suspended", actor_id=ctx.user_id)
    action = "member.suspend" if status == MembershipStatus.SUSPENDED else "member.reactivate"
    return _change(ctx, target, action, then=then, status=status)


def remove(ctx: TenantContext, target: Membership) -> None:
    if target.user_id == ctx.user_id:
        raise RuleViolation("To remove yourself, use Leave.")
    _may_manage(ctx, target)
    lock_tenant(ctx.tenant)
    _keeps_an_owner(ctx, target)
    before = _snapshot(target) | {"email": target.user.email}
    # Counted: the database lets only members:manage delete another's membership, and a DELETE
    # its policy filters matches nothing rather than failing (migration 0027).
    if not db.session.execute(delete(Membership).where(Membership.tenant_id == ctx.tenant_id,
                                                       Membership.id == target.id)).rowcount:
        raise Refused("the role does not allow members:manage")
    db.session.expunge(target)
    flush_guarded()
    revoke_grants(target.user_id, tenant_id=ctx.tenant_id, reason="member_removed", actor_id=ctx.user_id)
    audit.record(ctx.tenant_id, ctx.user_id, "member.remove", "membership", target.user_id, before=before)
    emit_event(ctx.tenant_id, "member.left", {"user_id": target.user_id, "reason": "removed"})


def leave(ctx: TenantContext) -> None:
    actor = mapped(ctx.membership)
    lock_tenant(ctx.tenant)
    if roles.is_owner(actor) and active_owner_count(ctx.tenant_id) <= 1:
        raise RuleViolation("You are the last owner: transfer ownership before leaving.")
    before = _snapshot(actor)
    db.session.delete(actor)
    flush_guarded()
    revoke_grants(ctx.user_id, tenant_id=ctx.tenant_id, reason="member_removed", actor_id=ctx.user_id)
    audit.record(ctx.tenant_id, ctx.user_id, "member.leave", "membership", ctx.user_id, before=before)
    emit_event(ctx.tenant_id, "member.left", {"user_id": ctx.user_id, "reason": "left"})


def transfer_ownership(ctx: TenantContext, target: Membership) -> None:
    """The actor (an owner) makes `target` owner and becomes admin, in one transaction."""
    actor = mapped(ctx.membership)
    if not ctx.is_owner:
        raise RuleViolation("Only an owner can transfer ownership.")
    if target.user_id == ctx.user_id:
        raise RuleViolation("You already own this organization.")
    if target.status != MembershipStatus.ACTIVE:
        raise RuleViolation("Ownership can only go to an active member.")
    lock_tenant(ctx.tenant)
    before = {"from": _snapshot(actor), "to": _snapshot(target)}
    for name, value in roles.OWNER.columns().items():
        setattr(target, name, value)
    for name, value in roles.FORMER_OWNER.columns().items():
        setattr(actor, name, value)
    flush_guarded()
    audit.record(ctx.tenant_id, ctx.user_id, "member.transfer_ownership", "membership", target.user_id,
                 before=before, after={"from": _snapshot(actor), "to": _snapshot(target)})
