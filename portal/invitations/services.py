"""Invitations: invite, resend, cancel, and accept or decline by token.

Services take the request's TenantContext explicitly (acceptance, which has none yet, takes
what the token found), queue email in the same transaction (the outbox) and write their
audit row; they never commit.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from uuid import UUID

from email_validator import EmailNotValidError, validate_email
from flask import current_app, url_for
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from .. import audit
from ..accounts.models import User
from ..accounts.services import normalise_email
from ..database.context import acting_as, set_context, tenant_scope
from ..events import emit as emit_event, emit_many as emit_events
from ..extensions import db
from ..mail.models import OutboxMessage
from ..mail.outbox import enqueue, failure_text
from ..notifications import Kind, notify
from ..rules import RuleViolation
from ..tenancy import TenantContext, roles
from ..tenancy.models import Membership, MembershipStatus
from ..tenancy.queries import lock_tenant
from ..sites.models import Site, SiteAssignment
from ..tenants.models import Tenant
from .models import Invitation, InvitationStatus
from .tokens import hash_token, new_token

MAX_PER_REQUEST = 50


def now() -> datetime:
    return datetime.now(timezone.utc)


def parse_emails(raw: str) -> list[str]:
    """Split on commas, semicolons and whitespace; normalise; refuse invalid addresses by name."""
    parts = [p for p in raw.replace(",", " ").replace(";", " ").split() if p]
    emails, bad = [], []
    for part in parts:
        try:
            email = normalise_email(validate_email(part, check_deliverability=False).normalized)
        except EmailNotValidError:
            bad.append(part)
            continue
        if email not in emails:
            emails.append(email)
    if bad:
        raise RuleViolation(f"Not a valid email address: {', '.join(bad[:5])}.", field="emails")
    if not emails:
        raise RuleViolation("Enter at least one email address.", field="emails")
    if len(emails) > MAX_PER_REQUEST:
        raise RuleViolation(f"Invite at most {MAX_PER_REQUEST} people at a time.", field="emails")
    return emails


def seats_used(tenant: Tenant) -> int:
    """Members (active or suspended) plus pending, unexpired invitations."""
    members = db.session.scalar(select(func.count()).select_from(Membership).where(
        Membership.tenant_id == tenant.id)) or 0
    pending = db.session.scalar(select(func.count()).select_from(Invitation).where(
        Invitation.tenant_id == tenant.id, Invitation.status == InvitationStatus.PENDING,
        Invitation.expires_at > func.now())) or 0
    return members + pending


def accept_url(token: str) -> str:
    # BASE_URL, never the request's Host header (set outside production by default: portal.config).
    return current_app.config["BASE_URL"] + url_for("accept.show", token=token)


def _send(tenant: Tenant, inviter: User, invitation: Invitation, token: str) -> None:
    enqueue("invitation", invitation.email, f"{inviter.display_name} invited you to {tenant.name}",
            "invitation", about=(tenant.id, invitation.id), sender_id=inviter.id,
            tenant=tenant, inviter=inviter, invitation=invitation, link=accept_url(token))


def delivery_failed(message: OutboxMessage) -> None:
    """An invitation's email failed for good (mail.outbox.failure_hooks): whoever sent it hears of it
    in the bell; the invitation list shows it on the row (queries.undelivered). Runs in the delivery's
    transaction, in the invitation's tenant."""
    if message.about_tenant_id is None or message.about_id is None or message.sender_id is None:
        return
    with tenant_scope(db.session, message.about_tenant_id, actor=None):
        tenant = db.session.get(Tenant, message.about_tenant_id)
        invitation = db.session.scalar(select(Invitation).where(Invitation.tenant_id == message.about_tenant_id,
                                                                Invitation.id == message.about_id))
        if tenant is None or invitation is None:
            return
        notify(tenant.id, [message.sender_id], Kind.INVITATION_UNDELIVERED,
               {"email": invitation.email, "tenant": tenant.name, "reason": failure_text(message)},
               f"/t/{tenant.slug}/invitations/")


def _expiry() -> datetime:
    return now() + timedelta(hours=current_app.config["INVITATION_TTL_HOURS"])


def _may_give(ctx: TenantContext, role: roles.Role, field: str | None = None) -> None:
    if not roles.may_grant(ctx, role):
        raise RuleViolation("Only an owner can invite another owner." if role.is_owner else
                            f"You cannot invite people as {role.name}: it allows more than your own role does.",
                            field=field)


def invite(ctx: TenantContext, emails: list[str], role: roles.Role | None,
           site_ids: list[UUID] | None = None, further: list[roles.Role] | None = None) -> list[Invitation]:
    """`role`: the base role; `further`: custom roles given besides it (tenancy.roles)."""
    tenant = ctx.tenant
    if role is None:
        raise RuleViolation("Choose one of this organization's roles.", field="role")
    _may_give(ctx, role, "role")
    if any(r is None for r in further or []):
        raise RuleViolation("One of the chosen roles no longer exists: choose again.", field="further_roles")
    further = [r for r in dict((r.key, r) for r in further or []).values() if r.key != role.key]
    for extra in further:
        if not extra.is_custom:
            raise RuleViolation("Further roles are custom roles: the base role is the built-in one.",
                                field="further_roles")
        _may_give(ctx, extra, "further_roles")
    role = roles.with_further(role, further)
    site_ids = list(dict.fromkeys(site_ids or []))
    if site_ids:
        known = set(db.session.scalars(select(Site.id).where(
            Site.tenant_id == tenant.id, Site.id.in_(site_ids), Site.archived_at.is_(None))))
        if known != set(site_ids):
            raise RuleViolation("Some of the chosen sites do not exist in this organization.", field="sites")
    lock_tenant(tenant)  # seats are counted and taken under the tenant's lock
    members = set(db.session.scalars(select(func.lower(User.email)).join(
        Membership, Membership.user_id == User.id).where(Membership.tenant_id == tenant.id,
                                                         func.lower(User.email).in_(emails))))
    if members:
        raise RuleViolation(f"Already a member: {', '.join(sorted(members))}.", field="emails")
    pending = db.session.scalars(select(Invitation).where(
        Invitation.tenant_id == tenant.id, Invitation.status == InvitationStatus.PENDING,
        func.lower(Invitation.email).in_(emails))).all()
    live = sorted(i.email for i in pending if i.expires_at > now())
    if live:
        raise RuleViolation(f"Already invited (pending): {', '.join(live)}. Resend the invitation instead.",
                            field="emails")
    for stale in pending:  # expired but never flipped: frees the one-pending-per-email slot
        stale.status = InvitationStatus.EXPIRED
    db.session.flush()  # the flipped rows must leave the partial unique index before the new ones arrive
    free = tenant.max_users - seats_used(tenant)
    if len(emails) > free:
        raise RuleViolation(f"Your plan allows {tenant.max_users} users and {max(free, 0)} seats are free "
                            f"(members plus pending invitations).", field="emails")
    inviter = db.session.get(User, ctx.user_id)
    created = []
    for email in emails:
        token, digest = new_token()
        invitation = Invitation(tenant_id=tenant.id, email=email, token_hash=digest, invited_by=ctx.user_id,
                                site_ids=site_ids, expires_at=_expiry(), **role.columns(),
                                extra_role_ids=[r.custom_id for r in role.further])
        db.session.add(invitation)
        db.session.flush()  # the id goes into the audit row
        _send(tenant, inviter, invitation, token)
        audit.record(tenant.id, ctx.user_id, "invitation.create", "invitation", invitation.id,
                     after={"email": email, **role.snapshot(), "sites": [str(s) for s in site_ids]})
        created.append(invitation)
    return created


def invite_first_owner(tenant: Tenant, admin: User, email: str) -> Invitation:
    """A new tenant's first owner, invited by a system admin from the console (who is not a
    member: no TenantContext). The caller has entered the tenant's RLS scope."""
    try:
        email = normalise_email(validate_email(email.strip(), check_deliverability=False).normalized)
    except EmailNotValidError:
        raise RuleViolation("Enter the first owner's email address.", field="owner_email") from None
    token, digest = new_token()
    invitation = Invitation(tenant_id=tenant.id, email=email, token_hash=digest, invited_by=admin.id,
                            expires_at=_expiry(), **roles.OWNER.columns())
    db.session.add(invitation)
    db.session.flush()  # the id goes into the audit row
    _send(tenant, admin, invitation, token)
    audit.record(tenant.id, admin.id, "invitation.create", "invitation", invitation.id,
                 after={"email": email, **roles.OWNER.snapshot(), "sites": []})
    return invitation


def get_invitation(ctx: TenantContext, invitation_id: UUID) -> Invitation | None:
    return db.session.scalar(select(Invitation).where(Invitation.tenant_id == ctx.tenant_id,
                                                      Invitation.id == invitation_id))


def resend(ctx: TenantContext, invitation: Invitation) -> Invitation:
    tenant = ctx.tenant
    if invitation.status not in (InvitationStatus.PENDING, InvitationStatus.EXPIRED):
        raise RuleViolation(f"This invitation is {invitation.status.value}; invite the person again instead.")
    _may_give(ctx, roles.role_of(invitation))
    lock_tenant(tenant)  # seats are counted and taken under the tenant's lock
    if invitation.status == InvitationStatus.EXPIRED:
        newer = db.session.scalar(select(Invitation.id).where(
            Invitation.tenant_id == tenant.id, Invitation.id != invitation.id,
            Invitation.status == InvitationStatus.PENDING, func.lower(Invitation.email) == invitation.email.lower()))
        if newer:
            raise RuleViolation(f"{invitation.email} has a newer pending invitation: resend that one.")
        if db.session.scalar(select(Membership.id).join(User, User.id == Membership.user_id).where(
                Membership.tenant_id == tenant.id, func.lower(User.email) == invitation.email.lower())):
            raise RuleViolation(f"{invitation.email} is already a member.")
    cooldown = current_app.config["INVITATION_RESEND_COOLDOWN"]
    wait = (invitation.last_sent_at + timedelta(seconds=cooldown) - now()).total_seconds()
    if wait > 0:
        raise RuleViolation(f"Sent recently: you can resend in {int(wait) + 1} seconds.")
    if invitation.effective_status(now()) == InvitationStatus.EXPIRED and \
            seats_used(tenant) >= tenant.max_users:
        raise RuleViolation(f"Your plan allows {tenant.max_users} users and none are free.")
    token, digest = new_token()  # the old link stops working
    invitation.token_hash, invitation.status = digest, InvitationStatus.PENDING
    invitation.expires_at, invitation.last_sent_at = _expiry(), now()
    invitation.send_count += 1
    _send(tenant, db.session.get(User, ctx.user_id), invitation, token)
    audit.record(tenant.id, ctx.user_id, "invitation.resend", "invitation", invitation.id,
                 after={"email": invitation.email, "send_count": invitation.send_count})
    return invitation


def cancel(ctx: TenantContext, invitation: Invitation) -> Invitation:
    if invitation.status != InvitationStatus.PENDING:
        raise RuleViolation(f"This invitation is already {invitation.status.value}.")
    invitation.status, invitation.cancelled_at, invitation.cancelled_by = (
        InvitationStatus.CANCELLED, now(), ctx.user_id)
    audit.record(ctx.tenant_id, ctx.user_id, "invitation.cancel", "invitation", invitation.id,
                 before={"status": "pending"}, after={"status": "cancelled", "email": invitation.email})
    return invitation


@dataclass
class Found:
    invitation: Invitation
    tenant: Tenant
    inviter: User | None

    @property
    def usable(self) -> bool:
        return self.invitation.effective_status(now()) == InvitationStatus.PENDING


def find_by_token(token: str) -> Found | None:
    """The narrow cross-tenant path: only a transaction presenting the token's hash can read
    its invitation (policy invitation_token_read); the tenant context follows from it."""
    if not token or len(token) > 200:
        return None
    digest = hash_token(token)
    set_context(db.session, token_hash=digest)
    invitation = db.session.scalar(select(Invitation).where(Invitation.token_hash == digest))
    if invitation is None:
        return None
    set_context(db.session, tenant_id=invitation.tenant_id)
    tenant = db.session.get(Tenant, invitation.tenant_id)
    if tenant is None or not tenant.is_usable:
        return None
    inviter = db.session.get(User, invitation.invited_by) if invitation.invited_by else None
    return Found(invitation, tenant, inviter)


def accept(found: Found, user: User) -> Membership:
    """Exactly one acceptance wins: the status flip is one guarded statement. The invitee is no
    member yet, so the writes run as the actor "invitation:accept" (the token is their right)."""
    with acting_as(db.session, "invitation:accept"):
        return _accept(found, user)


def _accept(found: Found, user: User) -> Membership:
    tenant, invitation = found.tenant, found.invitation
    if normalise_email(user.email) != normalise_email(invitation.email):
        raise RuleViolation("This invitation was sent to another email address.")
    lock_tenant(tenant)
    if db.session.scalar(select(Membership.id).where(Membership.tenant_id == tenant.id,
                                                     Membership.user_id == user.id)):
        raise RuleViolation(f"You are already a member of {tenant.name}.")
    members = db.session.scalar(select(func.count()).select_from(Membership).where(
        Membership.tenant_id == tenant.id)) or 0
    if members >= tenant.max_users:
        raise RuleViolation(f"{tenant.name} has reached its plan's limit of {tenant.max_users} users. "
                            "Ask the person who invited you to free a seat.")
    won = db.session.execute(
        update(Invitation).where(Invitation.tenant_id == tenant.id, Invitation.id == invitation.id,
                                 Invitation.status == InvitationStatus.PENDING,
                                 Invitation.expires_at > func.now())
        .values(status=InvitationStatus.ACCEPTED, accepted_at=func.now(), accepted_by=user.id)
        .returning(Invitation.id)).scalar()
    if won is None:
        raise RuleViolation("This invitation has already been used or is no longer valid.")
    inserted = db.session.execute(
        insert(Membership).values(tenant_id=tenant.id, user_id=user.id, role=invitation.role,
                                  custom_role_id=invitation.custom_role_id, status=MembershipStatus.ACTIVE, invited_by=invitation.invited_by,
                                  invited_at=invitation.created_at, accepted_at=func.now())
        .on_conflict_do_nothing(index_elements=["tenant_id", "user_id"]).returning(Membership.id)).scalar()
    if inserted is None:
        raise RuleViolation(f"You are already a member of {tenant.name}.")
    if invitation.extra_role_ids:  # those deleted since the invitation was sent are skipped
        db.session.execute(text(
            "INSERT INTO user_roles (tenant_id, membership_id, role_id) SELECT :t, :m, r.id FROM tenant_roles r "
            "WHERE r.tenant_id = :t AND r.id = ANY(:ids)"), {"t": tenant.id, "m": inserted,
                                                             "ids": list(invitation.extra_role_ids)})
    live_sites = []
    if invitation.site_ids:
        live_sites = db.session.scalars(select(Site.id).where(
            Site.tenant_id == tenant.id, Site.id.in_(invitation.site_ids), Site.archived_at.is_(None))).all()
        for site_id in live_sites:
            db.session.add(SiteAssignment(tenant_id=tenant.id, site_id=site_id, user_id=user.id,
                                          assigned_by=invitation.invited_by))
    user.last_tenant_id = tenant.id
    audit.record(tenant.id, user.id, "invitation.accept", "invitation", invitation.id,
                 after={"email": invitation.email, **roles.role_of(invitation).snapshot(),
                        "sites": [str(s) for s in live_sites]})
    db.session.flush()  # surface constraint errors here, inside the service
    role = roles.role_of(invitation).snapshot()["role"]
    emit_events(tenant.id, [("invitation.accepted", {"invitation_id": invitation.id, "user_id": user.id, "role": role}),
                            ("member.joined", {"user_id": user.id, "role": role})])
    if invitation.invited_by and invitation.invited_by != user.id:
        notify(tenant.id, [invitation.invited_by], Kind.INVITATION_ACCEPTED,
               {"invitee": user.display_name, "tenant": tenant.name}, f"/t/{tenant.slug}/members/")
    db.session.expire(invitation)
    return db.session.scalar(select(Membership).where(Membership.tenant_id == tenant.id,
                                                      Membership.user_id == user.id))


def decline(found: Found, user: User | None) -> None:
    with acting_as(db.session, "invitation:decline"):  # the token is the invitee's right to answer
        _decline(found, user)


def _decline(found: Found, user: User | None) -> None:
    invitation = found.invitation
    flipped = db.session.execute(
        update(Invitation).where(Invitation.tenant_id == found.tenant.id, Invitation.id == invitation.id,
                                 Invitation.status == InvitationStatus.PENDING,
                                 Invitation.expires_at > func.now())
        .values(status=InvitationStatus.DECLINED, declined_at=func.now()).returning(Invitation.id)).scalar()
    if flipped is None:
        raise RuleViolation("This invitation has already been used or is no longer valid.")
    audit.record(found.tenant.id, user.id if user else None, "invitation.decline", "invitation", invitation.id,
                 after={"email": invitation.email})
    db.session.expire(invitation)


def expire_overdue(tenant_id: UUID) -> int:
    """Mark the tenant's pending invitations past their expiry as expired (audited, system actor).
    Pages already read them as expired; this makes the stored status agree."""
    rows = db.session.execute(
        update(Invitation).where(Invitation.tenant_id == tenant_id, Invitation.status == InvitationStatus.PENDING,
                                 Invitation.expires_at <= func.now())
        .values(status=InvitationStatus.EXPIRED).returning(Invitation.id, Invitation.email)).all()
    audit.record_many(tenant_id, None, "invitation.expired", "invitation",
                      [(row.id, {"status": "pending"}, {"status": "expired", "email": row.email}) for row in rows])
    return len(rows)
