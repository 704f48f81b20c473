"""SCIM provisioning rules: the organization's tokens, and the people an identity provider
creates, changes, suspends and removes. Through the same services and rules as the pages
(members.services for status and removal, the plan's user limit as invitations count it),
with the request's TenantContext, audited, never committing.

Lock order (database.conflicts): the tenant lock first (every write here takes it before
reading what it changes), then rows, the audit chain last."""
from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import func, select

from .. import audit
from ..accounts.models import User
from ..accounts.services import create_user as create_account
from ..accounts import lifecycle
from ..accounts.services import find_user_by_email
from ..extensions import db
from ..invitations.services import seats_used
from ..members import services as members
from ..rules import RuleViolation
from ..tenancy import TenantContext, roles
from ..tenancy.limits import require_room
from ..tenancy.models import Membership, MembershipStatus
from ..tenancy.queries import lock_tenant
from . import groups, tokens
from .errors import ScimError
from .models import ScimGroup, ScimToken, ScimUser
from .resources import UserData


NAME_MAX = 100
PROVISIONED_ROLE = groups.PROVISIONED_ROLE


def _now() -> datetime:
    return datetime.now(UTC)


# --- Tokens -------------------------------------------------------------------------------

def list_tokens(ctx: TenantContext) -> list[ScimToken]:
    return list(db.session.scalars(select(ScimToken).where(ScimToken.tenant_id == ctx.tenant_id)
                                   .order_by(ScimToken.revoked_at.is_not(None), ScimToken.created_at.desc())))


def counts(ctx: TenantContext) -> tuple[int, int]:
    """(people, groups) the organization's identity provider keeps here."""
    people = db.session.scalar(select(func.count()).select_from(ScimUser).where(ScimUser.tenant_id == ctx.tenant_id))
    groups_ = db.session.scalar(select(func.count()).select_from(ScimGroup).where(ScimGroup.tenant_id == ctx.tenant_id))
    return people or 0, groups_ or 0


def get_token(ctx: TenantContext, token_id: UUID) -> ScimToken | None:
    return db.session.scalar(select(ScimToken).where(ScimToken.tenant_id == ctx.tenant_id, ScimToken.id == token_id))


def _name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name or len(name) > NAME_MAX:
        raise RuleViolation(f"Name the token (its identity provider, say) in at most {NAME_MAX} characters.",
                            field="name")
    return name


def create_token(ctx: TenantContext, name: str) -> tuple[ScimToken, str]:
    """The new token and its secret, which is shown once and never stored."""
    name = _name(name)
    secret = tokens.new_token()
    token = ScimToken(tenant_id=ctx.tenant_id, name=name, token_hash=tokens.token_hash(secret), created_by=ctx.user_id)
    db.session.add(token)
    db.session.flush()  # the id goes into the audit row
    audit.record(ctx.tenant_id, ctx.user_id, "scim_token.create", "scim_token", token.id, after={"name": name})
    return token, secret


def rotate_token(ctx: TenantContext, token: ScimToken) -> str:
    """A new secret for the token; the old one stops working at once."""
    if token.revoked_at is not None:
        raise RuleViolation(f"{token.name} is revoked: create a new token instead.")
    secret = tokens.new_token()
    token.token_hash, token.rotated_at = tokens.token_hash(secret), _now()
    audit.record(ctx.tenant_id, ctx.user_id, "scim_token.rotate", "scim_token", token.id, after={"name": token.name})
    return secret


def revoke_token(ctx: TenantContext, token: ScimToken) -> None:
    if token.revoked_at is not None:
        raise RuleViolation(f"{token.name} is already revoked.")
    token.revoked_at = _now()
    audit.record(ctx.tenant_id, ctx.user_id, "scim_token.revoke", "scim_token", token.id,
                 before={"name": token.name, "revoked": False}, after={"name": token.name, "revoked": True})


# --- Users --------------------------------------------------------------------------------

def get_user(ctx: TenantContext, scim_id: str) -> tuple[ScimUser, Membership] | None:
    try:
        rid = UUID(scim_id)
    except ValueError:
        return None
    row = db.session.execute(
        select(ScimUser, Membership).join(Membership, (Membership.tenant_id == ScimUser.tenant_id)
                                          & (Membership.user_id == ScimUser.user_id))
        .where(ScimUser.tenant_id == ctx.tenant_id, ScimUser.id == rid)).first()
    return (row[0], row[1]) if row else None


def _unique_user_name(ctx: TenantContext, user_name: str, but: UUID | None = None) -> None:
    stmt = select(ScimUser.id).where(ScimUser.tenant_id == ctx.tenant_id,
                                     func.lower(ScimUser.user_name) == user_name.lower())
    if but is not None:
        stmt = stmt.where(ScimUser.id != but)
    if db.session.scalar(stmt) is not None:
        raise ScimError(409, f"A user with the userName {user_name} is already provisioned here.", "uniqueness")


def _snapshot(row: ScimUser) -> dict:
    return {"user_name": row.user_name, "external_id": row.external_id, "display_name": row.display_name,
            "emails": list(row.emails or [])}


def _rules(exc: RuleViolation) -> ScimError:
    """A rule of the pages refusing a SCIM change: the same words, as a SCIM error."""
    return ScimError(400, exc.message, "mutability" if "owner" in exc.message else None)


def create_user(ctx: TenantContext, data: UserData) -> ScimUser:
    """Create the account (or link the existing one with that email) and its membership; a
    membership that already exists (an invited person, say) is taken over. A new membership
    takes a seat of the plan, counted under the tenant lock as invitations count them."""
    tenant = ctx.tenant
    lock_tenant(tenant)
    _unique_user_name(ctx, data.user_name)
    user = find_user_by_email(data.email)
    created_account = user is None
    membership = None if user is None else members.get_membership(ctx, user.id)
    if membership is not None and db.session.scalar(select(ScimUser.id).where(
            ScimUser.tenant_id == ctx.tenant_id, ScimUser.user_id == user.id)) is not None:
        raise ScimError(409, f"{data.email} is already provisioned here under another userName.", "uniqueness")
    if membership is None:
        try:
            require_room(tenant, "max_users", seats_used(tenant))
        except RuleViolation as exc:
            raise ScimError(403, exc.message) from None
        if user is None:
            user = create_account(data.email, data.name or "", None)
        membership = Membership(tenant_id=tenant.id, user_id=user.id, **PROVISIONED_ROLE.columns(),
                                status=MembershipStatus.ACTIVE if data.active else MembershipStatus.SUSPENDED,
                                accepted_at=func.now())
        db.session.add(membership)
        db.session.flush()  # the SCIM row references the membership
        audit.record(tenant.id, None, "member.provision", "membership", user.id,
                     after={"email": user.email, **PROVISIONED_ROLE.snapshot(), "status": membership.status.value,
                            "user_name": data.user_name})
    else:  # an invited or earlier member: from now on the provider keeps them
        if membership.status == MembershipStatus.ACTIVE and not data.active:
            _set_active(ctx, membership, False)
        audit.record(tenant.id, None, "member.provision", "membership", user.id,
                     after={"email": user.email, **roles.role_of(membership).snapshot(),
                            "status": membership.status.value, "user_name": data.user_name, "linked": True})
    row = ScimUser(tenant_id=tenant.id, user_id=user.id, user_name=data.user_name, external_id=data.external_id,
                   display_name=data.display_name, emails=data.emails, attributes=data.attributes,
                   created_account=created_account)
    db.session.add(row)
    db.session.flush()  # the id is the resource's
    return row


def replace_user(ctx: TenantContext, row: ScimUser, membership: Membership, data: UserData) -> ScimUser:
    """PUT, and PATCH once applied to a copy of the resource: the new state as a whole."""
    lock_tenant(ctx.tenant)
    if data.user_name.lower() != row.user_name.lower():
        _unique_user_name(ctx, data.user_name, but=row.id)
    # The status first: its rows are locked before this request writes to the audit chain.
    if (membership.status == MembershipStatus.ACTIVE) != data.active:
        _set_active(ctx, membership, data.active)
        row.version += 1
        if data.active:  # back: the groups they are in give what they give
            groups.follow(ctx, {row.id: []})
    before = _snapshot(row)
    row.user_name, row.external_id, row.display_name = data.user_name, data.external_id, data.display_name
    row.emails, row.attributes = data.emails, data.attributes
    changed = _snapshot(row) != before
    if row.created_account and data.name:
        account = db.session.get(User, row.user_id)
        if account is not None and account.name != data.name:
            account.name, changed = data.name, True
    if changed:
        row.version += 1
        audit.record(ctx.tenant_id, None, "member.scim_update", "membership", row.user_id, before=before,
                     after=_snapshot(row))
    db.session.flush()  # the unique userName index speaks here, inside the service
    return row


def _set_active(ctx: TenantContext, membership: Membership, active: bool) -> None:
    try:
        members.set_status(ctx, membership, MembershipStatus.ACTIVE if active else MembershipStatus.SUSPENDED)
    except RuleViolation as exc:
        raise _rules(exc) from None
    if not active:
        end_access(ctx, membership.user_id, "suspended by the identity provider (SCIM)")


def delete_user(ctx: TenantContext, row: ScimUser, membership: Membership) -> None:
    """Remove the membership (its SCIM resource and group memberships go with it); the account
    stays, as it may belong to other organizations."""
    user_id = membership.user_id
    try:
        members.remove(ctx, membership)
    except RuleViolation as exc:
        raise _rules(exc) from None
    end_access(ctx, user_id, "removed by the identity provider (SCIM)")


def end_access(ctx: TenantContext, user_id: UUID, reason: str) -> None:
    """End the person's tokens and grants in this organization now, not at their next request
    (accounts.lifecycle). The membership's status already closes the organization to them."""
    lifecycle.end_access(user_id, tenant_id=ctx.tenant_id, reason=reason)
