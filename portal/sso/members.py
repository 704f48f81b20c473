"""Who an organization's sign-in is, and what they become there (issue 25). Services flush; the
request edge commits. The caller has entered the connection's tenant (RLS scope).

1. An account linked to (connection, subject) is that account, whatever the email says now.
2. Otherwise the email must be verified by the provider AND in a domain this organization has
   verified: only then does the provider speak for the address (another organization's provider
   asserting someone's email would otherwise take over their account). Then the account with that
   email is linked, or one is created.
3. The account's membership: kept if active; refused if suspended; otherwise just in time with the
   connection's default role (within the plan's user limit), or refused when the connection admits
   members by invitation only.
4. Groups: the membership follows the connection's group mappings (sso.groups.apply).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from .. import audit
from ..accounts.models import User
from ..accounts.services import create_user, find_user_by_email, normalise_email
from ..extensions import db
from ..invitations.services import seats_used
from ..rules import RuleViolation
from ..tenancy import roles
from ..tenancy.limits import require_room
from ..tenancy.models import Membership, MembershipStatus
from ..tenancy.queries import lock_tenant
from ..tenants.models import Tenant
from . import groups as group_rules
from .models import SsoConnection, SsoDomain, SsoIdentity
from .services import DISABLED, _name, _plausible, _verified


@dataclass
class Joined:
    user: User | None
    reason: str  # "subject", "linked", "created" (+ "joined") on success; the sign-in history's reason otherwise
    email: str = ""
    message: str = ""
    user_id: UUID | None = None
    joined: bool = False
    groups_changed: bool = False
    groups: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.user is not None


def _refuse(reason: str, email: str, message: str, user: User | None = None) -> Joined:
    return Joined(None, reason, email, message, user.id if user else None)


def domain_verified(tenant_id: UUID, email: str) -> bool:
    domain = email.rpartition("@")[2]
    return bool(db.session.scalar(select(SsoDomain.id).where(SsoDomain.tenant_id == tenant_id,
                                                             SsoDomain.domain == domain,
                                                             SsoDomain.verified_at.is_not(None))))


def actor(connection: SsoConnection) -> audit.Actor:
    return audit.Actor("sso", connection.id, f"single sign-on ({connection.name})")


def sign_in(tenant: Tenant, connection: SsoConnection, claims: dict) -> Joined:
    subject = str(claims.get("sub") or "")[:255]
    email = normalise_email(str(claims.get("email") or ""))
    group_names = group_rules.normalise(claims.get("groups"))
    if not subject:
        return _refuse("oidc_no_subject", email, "The single sign-on provider did not say who you are. Try again.")
    link = db.session.scalar(select(SsoIdentity).where(SsoIdentity.tenant_id == tenant.id,
                                                       SsoIdentity.connection_id == connection.id,
                                                       SsoIdentity.subject == subject))
    user, reason = None, "subject"
    if link is not None:
        user = db.session.get(User, link.user_id)
    else:
        if not email or not _plausible(email):
            return _refuse("oidc_no_email", email, "Your single sign-on account has no usable email address. "
                           "Ask your identity provider's administrator to add one.")
        if not _verified(claims):
            return _refuse("oidc_email_unverified", email, f"Your single sign-on provider has not verified {email}. "
                           "Verify the address there, then try again.")
        if not domain_verified(tenant.id, email):
            return _refuse("sso_domain_unverified", email,
                           f"{tenant.name} has not verified the domain of {email}, so its single sign-on cannot "
                           "sign you in with it. Sign in with your password, or ask its owners to verify the domain.")
        user = find_user_by_email(email)
        if user is None and connection.invitations_only:  # nobody to create: say so before writing anything
            return _refuse("sso_invitation_only", email, f"{tenant.name} admits members by invitation only. Ask one "
                           f"of its admins to invite {email}.")
        if user is None:
            user = create_user(email, _name(claims), None, email_verified_at=func.now())
            reason = "created"
        else:
            reason = "linked"
            if user.email_verified_at is None:
                user.email_verified_at = func.now()
    if user is None or not user.is_active:
        return _refuse("disabled", email or (user.email if user else ""), DISABLED, user)

    # Lock order (database/conflicts.py): the tenant first. Seats are counted under it, and the
    # membership, its sites and the identity link are written before the audit chain is taken.
    lock_tenant(tenant)
    membership = db.session.scalar(select(Membership).where(Membership.tenant_id == tenant.id,
                                                            Membership.user_id == user.id))
    joined = False
    if membership is None:
        if connection.invitations_only:
            return _refuse("sso_invitation_only", user.email,
                           f"{tenant.name} admits members by invitation only. Ask one of its admins to invite "
                           f"{user.email}.", user)
        try:
            membership = _join(tenant, connection, user)
        except RuleViolation as exc:
            return _refuse("sso_plan_limit", user.email, exc.message, user)
        joined = True
    elif membership.status != MembershipStatus.ACTIVE:
        return _refuse("sso_membership_suspended", user.email,
                       f"Your membership of {tenant.name} is suspended. Ask one of its admins for help.", user)

    _link(tenant, connection, user, subject, link, group_names)
    changed = group_rules.apply(membership, group_names, source=actor(connection).name, connection_id=connection.id)
    user.last_tenant_id = tenant.id
    db.session.flush()
    return Joined(user, reason, user.email, joined=joined, groups_changed=changed, groups=group_names)


def _join(tenant: Tenant, connection: SsoConnection, user: User) -> Membership:
    require_room(tenant, "max_users", seats_used(tenant))
    role = roles.resolve(tenant.id, connection.default_role) or roles.DEFAULT
    if role.is_owner:
        role = roles.DEFAULT
    db.session.execute(insert(Membership).values(tenant_id=tenant.id, user_id=user.id, status=MembershipStatus.ACTIVE,
                                                 accepted_at=func.now(), **role.columns())
                       .on_conflict_do_nothing(index_elements=["tenant_id", "user_id"]))
    membership = db.session.scalar(select(Membership).where(Membership.tenant_id == tenant.id,
                                                            Membership.user_id == user.id))
    audit.record(tenant.id, actor(connection), "sso.jit_join", "membership", user.id,
                 after={"email": user.email, **role.snapshot()}, connection=connection.name)
    return membership


def _link(tenant: Tenant, connection: SsoConnection, user: User, subject: str, link: SsoIdentity | None,
          group_names: list[str]) -> None:
    if link is None:
        db.session.execute(insert(SsoIdentity).values(tenant_id=tenant.id, connection_id=connection.id,
                                                      user_id=user.id, subject=subject, groups=group_names,
                                                      last_sign_in_at=func.now())
                           .on_conflict_do_nothing(constraint="uq_sso_identities_tenant_id_connection_id_subject"))
    else:
        link.groups, link.last_sign_in_at = group_names, func.now()
