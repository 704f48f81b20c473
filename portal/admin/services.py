"""The system console's services: the life of a tenant: create, plan and limits, status changes.

Services take the acting system admin explicitly, write the tenant's audit rows in the same
transaction (under that tenant's RLS scope) and never commit.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from uuid import UUID

from sqlalchemy import func, select, text, tuple_

from .. import audit, keys
from ..accounts.models import User, UserStatus
from ..database.context import tenant_scope, user_scope
from ..database.search import contains_pattern, prefix_pattern
from ..extensions import db
from ..rules import RuleViolation
from ..security.services import change_status as change_user_status
from ..tenancy import roles
from ..tenancy.models import Membership
from ..tenancy.queries import lock_tenant
from ..devices.services import in_service
from ..invitations.services import invite_first_owner, seats_used
from ..sites.services import active_sites
from ..tenants.models import LIMITS, SLUG, Plan, Tenant, TenantStatus, TenantType
from ..tenants.plans import TYPE_OF_PLAN, apply_plan, get_plan

# Which status a console action leads to, from which statuses.
TRANSITIONS = {
    "suspend": (TenantStatus.SUSPENDED, {TenantStatus.ACTIVE, TenantStatus.PENDING, TenantStatus.ARCHIVED}),
    "reactivate": (TenantStatus.ACTIVE, {TenantStatus.SUSPENDED, TenantStatus.ARCHIVED, TenantStatus.PENDING}),
    "archive": (TenantStatus.ARCHIVED, {TenantStatus.ACTIVE, TenantStatus.PENDING, TenantStatus.SUSPENDED}),
}


def snapshot(tenant: Tenant) -> dict:
    return {"name": tenant.name, "slug": tenant.slug, "plan": tenant.plan, "status": tenant.status.value,
            **{limit: getattr(tenant, limit) for limit in LIMITS}}


@dataclass
class NewTenant:
    name: str
    slug: str
    plan: str
    owner_email: str


def create_tenant(admin: User, data: NewTenant) -> Tenant:
    name, slug = data.name.strip(), data.slug.strip().lower()
    if not name or len(name) > 200:
        raise RuleViolation("Give the organization a name (at most 200 characters).", field="name")
    if not SLUG.fullmatch(slug):
        raise RuleViolation("Use lowercase letters, digits and hyphens (not at either end), at most 63.",
                            field="slug")
    if db.session.scalar(text("SELECT portal_slug_taken(:s)"), {"s": slug}):
        raise RuleViolation(f"The address /t/{slug} is taken (or was, by a deleted organization): choose another.",
                            field="slug")
    plan = get_plan(data.plan)
    if plan is None:
        raise RuleViolation("Choose one of the plans.", field="plan")
    tenant = Tenant(name=name, slug=slug, type=TYPE_OF_PLAN.get(plan.key, TenantType.STANDARD),
                    status=TenantStatus.ACTIVE)
    apply_plan(tenant, plan)
    db.session.add(tenant)
    db.session.flush()  # the id scopes the invitation and the audit rows
    with tenant_scope(db.session, tenant.id, actor="console:tenant.create"):
        keys.create_tenant_key(tenant.id)  # its data key, wrapped by the newest master key
        invite_first_owner(tenant, admin, data.owner_email)
        audit.record(tenant.id, admin.id, "tenant.create", "tenant", tenant.id, after=snapshot(tenant),
                     console=True)
        db.session.flush()  # inside the scope: RLS checks the tenant's rows as they are written
    return tenant


def change_limits(admin: User, tenant: Tenant, plan: Plan, limits: dict[str, int]) -> Tenant:
    """A new plan, and limits that may differ from it (the tenant's override)."""
    before = snapshot(tenant)
    for limit, value in limits.items():
        if limit not in LIMITS or not isinstance(value, int) or value < (1 if limit == "max_users" else 0):
            raise RuleViolation(f"{limit.replace('_', ' ')} must be a whole number of at least "
                                f"{1 if limit == 'max_users' else 0}.", field=limit)
    tenant.plan = plan.key
    for limit, value in limits.items():
        setattr(tenant, limit, value)
    after = snapshot(tenant)
    if after != before:
        with tenant_scope(db.session, tenant.id, actor="console:tenant.plan"):
            audit.record(tenant.id, admin.id, "tenant.plan", "tenant", tenant.id, before=before, after=after,
                         console=True)
            db.session.flush()  # inside the scope: RLS checks the row as it is written
    return tenant


def change_features(admin: User, tenant: Tenant, features: list[str]) -> Tenant:
    """Features this tenant has on top of its plan's (seed 002's tenants.features)."""
    from ..tenants.plans import FEATURES
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise RuleViolation(f"Unknown features: {', '.join(unknown)[:200]}.", field="features")
    before = {"features": sorted(tenant.features or [])}
    tenant.features = sorted(set(features))
    after = {"features": tenant.features}
    if after != before:
        with tenant_scope(db.session, tenant.id, actor="console:tenant.features"):
            audit.record(tenant.id, admin.id, "tenant.features", "tenant", tenant.id, before=before, after=after,
                         console=True)
            db.session.flush()  # inside the scope: RLS checks the row as it is written
    return tenant


def change_status(admin: User, tenant: Tenant, action: str, reason: str) -> Tenant:
    target, allowed_from = TRANSITIONS[action]
    reason = (reason or "").strip()
    if tenant.status not in allowed_from:
        raise RuleViolation(f"{tenant.name} is {tenant.status.value.replace('_', ' ')}: it cannot be {action}d.")
    if action == "suspend" and not reason:
        raise RuleViolation("Give a reason: members see it while the organization is suspended.", field="reason")
    if len(reason) > 500:
        raise RuleViolation("Keep the reason under 500 characters.", field="reason")
    before = snapshot(tenant) | {"reason": tenant.status_reason}
    # Serialise with members' changes of this tenant (they lock the same row, database.conflicts).
    lock_tenant(tenant)
    tenant.status, tenant.status_reason = target, reason or None
    tenant.status_changed_at = datetime.now(timezone.utc)
    with tenant_scope(db.session, tenant.id, actor="console:tenant.status"):
        audit.record(tenant.id, admin.id, f"tenant.{action}", "tenant", tenant.id, before=before,
                     after=snapshot(tenant) | {"reason": tenant.status_reason}, console=True)
        db.session.flush()  # inside the scope: RLS checks the row as it is written
    return tenant


def member_counts(tenants: list[Tenant]) -> dict:
    """Members (active or suspended) of each tenant of a console page: each counted in its own
    tenant scope (the reviewed path across tenants), one page of at most 50 at a time."""
    counts = {}
    for tenant in tenants:
        with tenant_scope(db.session, tenant.id, actor=None):
            counts[tenant.id] = db.session.scalar(select(func.count()).select_from(Membership).where(
                Membership.tenant_id == tenant.id)) or 0
    return counts


# What each console action is called, what it does to members, and the verb of its button.
STATUS_ACTIONS = {
    "suspend": ("Suspend", "Its members are kept out and see only the reason you give, until it is reactivated."),
    "archive": ("Archive", "Its members can still read everything, but nobody can change anything."),
    "reactivate": ("Reactivate", "Its members can use it fully again."),
}


def status_actions(tenant: Tenant) -> list[tuple[str, str, str]]:
    """(action, label, consequence) of the changes the tenant's status allows now."""
    return [(action, *STATUS_ACTIONS[action]) for action, (target, allowed) in TRANSITIONS.items()
            if tenant.status in allowed and tenant.status != target]


def usage(tenant: Tenant) -> dict[str, int]:
    """What counts against each limit (as the areas count it), read under the tenant's scope."""
    with tenant_scope(db.session, tenant.id, actor=None):
        from ..api.models import ApiClient
        from ..integrations.models import Integration
        count = lambda model: db.session.scalar(select(func.count()).select_from(model)  # noqa: E731
                                                .where(model.tenant_id == tenant.id)) or 0
        return {"max_users": seats_used(tenant),
                "max_sites": active_sites(tenant.id), "max_devices": in_service(tenant.id),
                "max_integrations": count(Integration), "max_api_clients": count(ApiClient)}


def search(q: str = "", status: str = "", plan: str = "", sort: str = "name", after: str = "",
           page_size: int = 50) -> tuple[list[Tenant], str | None]:
    """Tenants matching a name or slug prefix, a status and a plan, keyset-paginated by name or
    by creation (newest first)."""
    stmt = select(Tenant)
    if q:
        like = prefix_pattern(q)
        stmt = stmt.where((func.lower(Tenant.name).like(like)) | (Tenant.slug.like(like)))
    if status in TenantStatus._value2member_map_:
        stmt = stmt.where(Tenant.status == TenantStatus(status))
    if plan:
        stmt = stmt.where(Tenant.plan == plan)
    created = sort == "created"
    key = (Tenant.created_at.desc(), Tenant.id.desc()) if created else (Tenant.name, Tenant.id)
    position = _position(after, created)
    if position is not None:
        columns = tuple_(Tenant.created_at, Tenant.id) if created else tuple_(Tenant.name, Tenant.id)
        stmt = stmt.where(columns < tuple_(*position) if created else columns > tuple_(*position))
    rows = list(db.session.scalars(stmt.order_by(*key).limit(page_size + 1)))
    more = len(rows) > page_size
    rows = rows[:page_size]
    if not more:
        return rows, None
    last = rows[-1]
    return rows, (f"{last.created_at.isoformat()}|{last.id}" if created else f"{last.name}|{last.id}")


def _position(after: str, created: bool):
    """The keyset position of a `next` link, or None for a first page (or a mangled link)."""
    first, _, ident = after.rpartition("|")
    try:
        return (datetime.fromisoformat(first) if created else first, UUID(ident)) if after else None
    except ValueError:
        return None


def find_users(q: str = "", after: str = "", page_size: int = 50) -> tuple[list[User], str | None]:
    """Users whose email or name contains `q`, by email, keyset-paginated (users are global rows)."""
    email = func.lower(User.email)
    stmt = select(User, email.label("key")).order_by(email).limit(page_size + 1)
    if q:
        like = contains_pattern(q)
        stmt = stmt.where(email.like(like) | func.lower(User.name).like(like))
    if after:
        stmt = stmt.where(email > after)
    rows = db.session.execute(stmt).all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    return [u for u, _ in rows], (rows[-1].key if more else None)


def memberships_of(user: User) -> list:
    """(tenant, membership) of every tenant the user belongs to, read as the user would read
    their own (the narrow `membership_self_read` path)."""
    from ..tenancy.models import Membership
    with user_scope(db.session, user.id):
        rows = db.session.execute(select(Tenant, Membership).join(Membership, Membership.tenant_id == Tenant.id)
                                  .where(Membership.user_id == user.id).order_by(Tenant.name, Tenant.id)).all()
        return [(t, m, roles.role_of(m).name) for t, m in rows]


def set_user_status(admin: User, user: User, action: str, reason: str) -> int:
    """Suspend (with a reason the person is shown at sign-in; their sessions and tokens end at
    once) or reactivate an account, recorded in each of its tenants' audit logs. Returns the
    sessions ended."""
    reason = (reason or "").strip()
    if user.id == admin.id:
        raise RuleViolation("You cannot suspend your own account.")
    # The account's row before any audit chain (profile.deletion.purge takes it first too). NO KEY:
    # rows that name the account (notifications, assignments) still pass their foreign-key checks.
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update(key_share=True))
    db.session.refresh(user, ["status"])
    if action == "suspend":
        if user.status != UserStatus.ACTIVE:
            raise RuleViolation(f"{user.email} is {user.status.value}: only an active account can be suspended.")
        if not reason:
            raise RuleViolation("Give a reason: the person is shown it when they try to sign in.", field="reason")
        if len(reason) > 500:
            raise RuleViolation("Keep the reason under 500 characters.", field="reason")
        target = UserStatus.SUSPENDED
    elif action == "reactivate":
        if user.status != UserStatus.SUSPENDED:
            raise RuleViolation(f"{user.email} is {user.status.value}: only a suspended account can be reactivated.")
        target = UserStatus.ACTIVE
    else:
        raise RuleViolation("Choose suspend or reactivate.")
    ended = change_user_status(user, target, by=admin.id, reason=reason or None)
    for tenant, _, _ in memberships_of(user):
        with tenant_scope(db.session, tenant.id, actor="console:user.status"):
            audit.record(tenant.id, admin.id, f"user.{action}", "user", user.id,
                         after={"email": user.email, "reason": reason or None, "sessions_ended": ended}, console=True)
            db.session.flush()  # inside the scope: RLS checks the row as it is written
    return ended


def set_user_active(admin: User, user: User, active: bool) -> int:
    """Older callers: enable is reactivate, disable is suspend with a plain reason."""
    return set_user_status(admin, user, "reactivate" if active else "suspend",
                           "" if active else "Disabled by a system administrator.")
