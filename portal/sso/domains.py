"""Verified email domains: claim, check the DNS TXT record, re-check, lose; and the cross-tenant
route a domain gives at /login (home-realm discovery, required single sign-on).

The record: `portal-verification=<token>` as a TXT record at `_portal.<domain>` (a name of its own,
so the domain's apex TXT records, SPF and the like, stay untouched). A domain is verified by at
most one organization: the check asks `portal_sso_domain_holder` (SECURITY DEFINER, migration
0019) under a per-domain advisory lock, so two organizations verifying at once cannot both win.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import func, select, text

from .. import audit
from .. import dns as dns_lookup
from ..extensions import db
from ..notifications import Kind, notify
from ..rules import RuleViolation
from ..tenancy import TenantContext, roles
from ..tenancy.models import Membership
from ..tenancy.queries import lock_tenant
from ..tenants.models import Tenant
from .models import SsoDomain

PREFIX = "_portal"
VALUE = "portal-verification="
DOMAIN = re.compile(r"(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
MAX_DOMAINS = 20  # per organization


class LookupFailed(Exception):
    """The DNS could not answer (timeout, server failure): nothing is concluded from it."""


def record_name(domain: str) -> str:
    return f"{PREFIX}.{domain}"


def record_value(row: SsoDomain) -> str:
    return f"{VALUE}{row.token}"


def normalise(value: str) -> str:
    value = (value or "").strip().lower().rstrip(".")
    if value.startswith("@"):
        value = value[1:]
    try:
        value = value.encode("idna").decode("ascii")
    except UnicodeError:
        return ""
    return value


def txt_records(name: str) -> list[str]:
    """The TXT strings at `name` ([] when there are none); LookupFailed when DNS does not answer.
    Through portal/dns.py: the resolver DNS_NAMESERVERS configures (a dnslib server in the tests)."""
    try:
        return dns_lookup.txt_records(name)
    except dns_lookup.NotFound:
        return []
    except dns_lookup.LookupFailed as exc:
        raise LookupFailed(str(exc)) from exc


def domains(ctx: TenantContext) -> list[SsoDomain]:
    return list(db.session.scalars(select(SsoDomain).where(SsoDomain.tenant_id == ctx.tenant_id)
                                   .order_by(SsoDomain.domain)))


def get_domain(ctx: TenantContext, domain_id: UUID) -> SsoDomain | None:
    return db.session.scalar(select(SsoDomain).where(SsoDomain.tenant_id == ctx.tenant_id, SsoDomain.id == domain_id))


def _snapshot(row: SsoDomain) -> dict:
    return {"domain": row.domain, "verified": row.verified_at is not None, "require_sso": row.require_sso}


def claim(ctx: TenantContext, value: str) -> SsoDomain:
    domain = normalise(value)
    if not DOMAIN.fullmatch(domain):
        raise RuleViolation("Enter a domain name such as example.com.", field="domain")
    lock_tenant(ctx.tenant)
    if db.session.scalar(select(func.count()).select_from(SsoDomain).where(SsoDomain.tenant_id == ctx.tenant_id)) \
            >= MAX_DOMAINS:
        raise RuleViolation(f"An organization can claim up to {MAX_DOMAINS} domains.", field="domain")
    if db.session.scalar(select(SsoDomain.id).where(SsoDomain.tenant_id == ctx.tenant_id, SsoDomain.domain == domain)):
        raise RuleViolation(f"{domain} is already in the list.", field="domain")
    row = SsoDomain(tenant_id=ctx.tenant_id, domain=domain, token=secrets.token_urlsafe(24), created_by=ctx.user_id)
    db.session.add(row)
    db.session.flush()  # its id for the audit row
    audit.record(ctx.tenant_id, ctx.user_id, "sso.domain_claim", "sso_domain", row.id, after=_snapshot(row))
    return row


@dataclass
class CheckResult:
    verified: bool
    message: str


def _holder(domain: str) -> UUID | None:
    return db.session.scalar(text("SELECT portal_sso_domain_holder(:d)"), {"d": domain})


def check(tenant: Tenant, row: SsoDomain, actor: UUID | audit.Actor | None) -> CheckResult:
    """Look the record up now and update the row: verified, still verified, lost, or not yet.
    The caller holds the tenant lock (lock order) and has entered the tenant's RLS scope."""
    name, expected = record_name(row.domain), record_value(row)
    try:
        found = expected in [r.strip() for r in txt_records(name)]
    except LookupFailed as exc:
        row.checked_at, row.check_error = func.now(), str(exc)[:300]
        return CheckResult(row.verified_at is not None, str(exc))
    row.checked_at = func.now()
    if found:
        if row.verified_at is not None:
            row.check_error = None
            return CheckResult(True, f"{row.domain} is verified; its record is in place.")
        # One organization per domain: serialise the verifications of this name across tenants.
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('sso-domain:' || :d))"), {"d": row.domain})
        holder = _holder(row.domain)
        if holder is not None and holder != row.tenant_id:
            row.check_error = "Another organization has already verified this domain."
            return CheckResult(False, f"{row.domain} is already verified by another organization. "
                                      "Ask its owners to remove it, or contact support.")
        before = _snapshot(row)
        row.verified_at, row.lost_at, row.check_error = func.now(), None, None
        db.session.flush()
        audit.record(row.tenant_id, actor, "sso.domain_verify", "sso_domain", row.id, before=before,
                     after=_snapshot(row) | {"verified": True})
        return CheckResult(True, f"{row.domain} is verified.")
    if row.verified_at is None:
        row.check_error = f"No TXT record {expected} at {name} yet."
        return CheckResult(False, f"The record is not there yet: publish TXT {name} “{expected}”, then check again "
                                  "(DNS changes can take a while to appear).")
    before = _snapshot(row)
    row.verified_at, row.lost_at = None, func.now()
    row.check_error = f"The TXT record at {name} is gone."
    db.session.flush()
    audit.record(row.tenant_id, actor, "sso.domain_lost", "sso_domain", row.id, before=before,
                 after=_snapshot(row) | {"verified": False})
    notify(row.tenant_id, select(Membership.user_id).where(Membership.tenant_id == row.tenant_id,
                                                            roles.owner_condition()),
           Kind.SSO_DOMAIN_LOST, {"domain": row.domain, "tenant": tenant.name, "record": name},
           f"/t/{tenant.slug}/settings/sso")
    return CheckResult(False, f"{row.domain} lost its verification: the TXT record at {name} is gone.")


def check_now(ctx: TenantContext, row: SsoDomain) -> CheckResult:
    lock_tenant(ctx.tenant)
    return check(ctx.tenant, row, ctx.user_id)


def remove(ctx: TenantContext, row: SsoDomain) -> None:
    lock_tenant(ctx.tenant)
    audit.record(ctx.tenant_id, ctx.user_id, "sso.domain_delete", "sso_domain", row.id, before=_snapshot(row))
    db.session.delete(row)


def set_require_sso(ctx: TenantContext, row: SsoDomain, required: bool) -> None:
    if required == row.require_sso:
        return
    if required and row.verified_at is None:
        raise RuleViolation(f"Verify {row.domain} before requiring single sign-on for it.")
    before = _snapshot(row)
    row.require_sso = required
    db.session.flush()
    audit.record(ctx.tenant_id, ctx.user_id, "sso.domain_require", "sso_domain", row.id, before=before,
                 after=_snapshot(row))


def recheck_tenant(tenant: Tenant) -> int:
    """The worker's periodic pass over one tenant's claimed domains (inside its RLS scope);
    returns how many changed state."""
    rows = list(db.session.scalars(select(SsoDomain).where(SsoDomain.tenant_id == tenant.id)
                                   .order_by(SsoDomain.domain)))
    if not rows:
        return 0
    lock_tenant(tenant)
    actor = audit.Actor("system", tenant.id, "the domain check")
    changed = 0
    for row in rows:
        was = row.verified_at is not None
        if check(tenant, row, actor).verified != was:
            changed += 1
    return changed


@dataclass(frozen=True)
class Route:
    """Where an email domain's sign-in goes: the usable tenant that verified it, whether it
    requires single sign-on, and its first enabled connection (None: none enabled)."""
    tenant_id: UUID
    slug: str
    name: str
    require_sso: bool
    connection_id: UUID | None


def route_for_email(email: str) -> Route | None:
    domain = normalise(email.rpartition("@")[2]) if "@" in (email or "") else ""
    if not domain:
        return None
    row = db.session.execute(text("SELECT * FROM portal_sso_domain_route(:d)"), {"d": domain}).first()
    if row is None:
        return None
    return Route(row.t_id, row.t_slug, row.t_name, bool(row.d_require_sso), row.c_id)
