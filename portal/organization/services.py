"""Changing an organization's settings. Services take the TenantContext, audit before/after in
the same transaction and never commit."""
from __future__ import annotations

import ipaddress
from datetime import datetime, timezone
from dataclasses import dataclass, field

from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select, text

from .. import audit
from ..accounts.models import User
from ..accounts.passwords import verify_password
from ..database.context import acting_as
from ..extensions import db
from ..jobs.engine import defer
from ..mail.outbox import enqueue
from ..rules import RuleViolation
from ..security.network import parse_networks
from ..tenancy import TenantContext
from ..tenancy.models import Membership, MembershipStatus
from ..tenancy.queries import lock_tenant
from ..tenants.models import SLUG, SlugRedirect, TenantStatus
from ..timezones import is_timezone
from .models import TenantExport


@dataclass
class Profile:
    name: str
    contact_email: str | None
    slug: str | None = None
    timezone: str | None = None  # settings.timezone: the calendar of the tenant's tasks without a site


def _move(ctx: TenantContext, slug: str) -> None:
    """A new address; the old one leads members there for SLUG_REDIRECT_DAYS and stays reserved."""
    if not SLUG.fullmatch(slug):
        raise RuleViolation("Use lowercase letters, digits and hyphens (not at either end), at most 63.", field="slug")
    lock_tenant(ctx.tenant)
    if db.session.scalar(text("SELECT portal_slug_taken(:s)"), {"s": slug}):
        mine = db.session.scalar(select(SlugRedirect.old_slug).where(
            SlugRedirect.tenant_id == ctx.tenant_id, SlugRedirect.old_slug == slug))
        if mine is None:
            raise RuleViolation(f"The address /t/{slug} is taken: choose another.", field="slug")
        db.session.execute(delete(SlugRedirect).where(SlugRedirect.tenant_id == ctx.tenant_id,
                                                      SlugRedirect.old_slug == slug))  # taking an old one back
    db.session.add(SlugRedirect(tenant_id=ctx.tenant_id, old_slug=ctx.tenant.slug,
                                expires_at=datetime.now(timezone.utc) + timedelta(days=SLUG_REDIRECT_DAYS)))
    ctx.tenant.slug = slug


@dataclass
class SecurityPolicy:
    require_mfa: bool = False
    mfa_grace_days: int = 0
    idle_timeout_minutes: int | None = None
    absolute_timeout_hours: int | None = None
    max_sessions: int | None = None
    ip_allowlist: list[str] = field(default_factory=list)
    share_member_signins: bool = False

    def as_settings(self) -> dict:
        values = {"require_mfa": self.require_mfa, "mfa_grace_days": self.mfa_grace_days,
                  "idle_timeout_minutes": self.idle_timeout_minutes,
                  "absolute_timeout_hours": self.absolute_timeout_hours, "max_sessions": self.max_sessions,
                  "ip_allowlist": self.ip_allowlist, "share_member_signins": self.share_member_signins}
        return {k: v for k, v in values.items() if v not in (None, [], 0, False) or k == "require_mfa"}


SLUG_REDIRECT_DAYS = 30


def update_profile(ctx: TenantContext, data: Profile) -> None:
    tenant = ctx.tenant
    name = data.name.strip()
    if not name or len(name) > 200:
        raise RuleViolation("Give the organization a name (at most 200 characters).", field="name")
    zone = (data.timezone or "").strip() or None
    if zone is not None and not is_timezone(zone):
        raise RuleViolation(f"{zone} is not a known IANA time zone (e.g. Europe/Berlin).", field="timezone")
    settings = dict(tenant.settings or {})
    before = {"name": tenant.name, "contact_email": tenant.contact_email, "slug": tenant.slug,
              "timezone": settings.get("timezone")}
    slug = (data.slug or tenant.slug).strip().lower()
    if slug != tenant.slug:
        _move(ctx, slug)
    tenant.name, tenant.contact_email = name, data.contact_email or None
    if zone != settings.get("timezone"):
        settings["timezone"] = zone
        tenant.settings = settings
    after = {"name": tenant.name, "contact_email": tenant.contact_email, "slug": tenant.slug, "timezone": zone}
    if after != before:
        audit.record(ctx.tenant_id, ctx.user_id, "tenant.update", "tenant", ctx.tenant_id, before=before, after=after)


def update_security(ctx: TenantContext, policy: SecurityPolicy, from_address: str | None) -> None:
    """Save the policy; a list of allowed networks that would shut out the person saving it is
    refused (they could not come back to correct it)."""
    networks = parse_networks(policy.ip_allowlist)  # raises RuleViolation naming a bad entry
    if networks and from_address:
        try:
            here = ipaddress.ip_address(from_address)
        except ValueError:
            here = None
        if here is None or not any(here in n for n in networks):
            raise RuleViolation(f"Your own address ({from_address}) is not in the list: saving it would lock you "
                                "out. Add your network first.", field="ip_allowlist")
    policy.ip_allowlist = [str(n) for n in networks]
    tenant = ctx.tenant
    settings = dict(tenant.settings or {})
    before = settings.get("security") or {}
    after = policy.as_settings()
    if policy.require_mfa:  # the grace period counts from when two-factor was first required
        after["mfa_required_since"] = before.get("mfa_required_since") if before.get("require_mfa") else \
            datetime.now(timezone.utc).isoformat()
    if after != before:
        settings["security"] = after
        tenant.settings = settings
        audit.record(ctx.tenant_id, ctx.user_id, "tenant.security_policy", "tenant", ctx.tenant_id,
                     before=before, after=after)


def request_deletion(ctx: TenantContext, password: str, typed_slug: str) -> None:
    """An owner asks for the organization to be deleted. It becomes read-only at once and is
    purged after the grace period (`flask tenants purge`); every member is told by email, and
    any owner can cancel until then."""
    if not ctx.is_owner:
        raise RuleViolation("Only an owner can delete the organization.")
    tenant = ctx.tenant
    if (typed_slug or "").strip() != tenant.slug:
        raise RuleViolation(f"Type {tenant.slug} to confirm.", field="confirm")
    actor = db.session.get(User, ctx.user_id)
    if actor.password_hash is not None and not verify_password(actor.password_hash, password or ""):
        raise RuleViolation("That password is not right.", field="password")
    lock_tenant(tenant)
    if tenant.status == TenantStatus.PENDING_DELETION:
        raise RuleViolation(f"{tenant.name} is already scheduled for deletion.")
    now = datetime.now(timezone.utc)
    before = {"status": tenant.status.value}
    tenant.status, tenant.status_changed_at = TenantStatus.PENDING_DELETION, now
    tenant.deletion_requested_at, tenant.deletion_requested_by = now, ctx.user_id
    tenant.purge_after = now + timedelta(days=current_app.config["TENANT_DELETION_GRACE_DAYS"])
    audit.record(ctx.tenant_id, ctx.user_id, "tenant.delete_request", "tenant", ctx.tenant_id, before=before,
                 after={"status": tenant.status.value, "purge_after": tenant.purge_after.isoformat()})
    members = db.session.scalars(select(User).join(Membership, Membership.user_id == User.id).where(
        Membership.tenant_id == ctx.tenant_id, Membership.status == MembershipStatus.ACTIVE))
    for member in members:
        enqueue("tenant_deletion", member.email, f"{tenant.name} will be deleted on {tenant.purge_after:%Y-%m-%d}",
                "tenant_deletion", tenant=tenant, requester=actor, member=member)


def cancel_deletion(ctx: TenantContext) -> None:
    if not ctx.is_owner:
        raise RuleViolation("Only an owner can cancel the deletion.")
    tenant = ctx.tenant
    lock_tenant(tenant)
    if tenant.status != TenantStatus.PENDING_DELETION:
        raise RuleViolation(f"{tenant.name} is not scheduled for deletion.")
    # The one change a tenant waiting for deletion accepts (read-only: its members' permissions
    # are reads only, in the database too), an owner's right rather than a permission.
    with acting_as(db.session, "owner:cancel-deletion"):
        tenant.status, tenant.status_changed_at = TenantStatus.ACTIVE, datetime.now(timezone.utc)
        tenant.deletion_requested_at = tenant.deletion_requested_by = tenant.purge_after = None
    audit.record(ctx.tenant_id, ctx.user_id, "tenant.delete_cancel", "tenant", ctx.tenant_id,
                 before={"status": "pending_deletion"}, after={"status": "active"})


def dismiss_onboarding(ctx: TenantContext) -> None:
    settings = dict(ctx.tenant.settings or {})
    if not settings.get("onboarding_done"):
        settings["onboarding_done"] = True
        ctx.tenant.settings = settings
        audit.record(ctx.tenant_id, ctx.user_id, "tenant.onboarding_dismiss", "tenant", ctx.tenant_id)


def request_export(ctx: TenantContext) -> TenantExport:
    """Queue a full export of the tenant (the job worker writes it); one at a time."""
    lock_tenant(ctx.tenant)
    busy = db.session.scalar(select(TenantExport.id).where(
        TenantExport.tenant_id == ctx.tenant_id, TenantExport.status.in_(("queued", "running"))))
    if busy is not None:
        raise RuleViolation("An export is already being prepared: you will get an email when it is ready.")
    export = TenantExport(tenant_id=ctx.tenant_id, requested_by=ctx.user_id)
    db.session.add(export)
    db.session.flush()  # the job names the export's id
    defer("tenants.export", export_id=str(export.id), tenant_id=str(ctx.tenant_id))
    audit.record(ctx.tenant_id, ctx.user_id, "tenant.export", "tenant_export", export.id)
    return export


def latest_export(ctx: TenantContext) -> TenantExport | None:
    return db.session.scalar(select(TenantExport).where(TenantExport.tenant_id == ctx.tenant_id)
                             .order_by(TenantExport.created_at.desc()).limit(1))


def export_by_token(ctx: TenantContext, token: str) -> TenantExport | None:
    """A finished export whose emailed link is still valid."""
    from .export import hash_token
    if not token or len(token) > 100:
        return None
    return db.session.scalar(select(TenantExport).where(
        TenantExport.tenant_id == ctx.tenant_id, TenantExport.token_hash == hash_token(token),
        TenantExport.status == "done", TenantExport.expires_at > func.now()))
