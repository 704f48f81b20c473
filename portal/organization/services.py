"""Changing an organization's settings. Services take the TenantContext, audit before/after in
the same transaction and never commit."""
from __future__ import annotations

import ipaddress
from datetime import datetime, timezone
from dataclasses import dataclass, field

from .. import audit
from ..rules import RuleViolation
from ..security.network import parse_networks
from ..tenancy import TenantContext


@dataclass
class Profile:
    name: str
    contact_email: str | None


@dataclass
class SecurityPolicy:
    require_mfa: bool = False
    mfa_grace_days: int = 0
    idle_timeout_minutes: int | None = None
    absolute_timeout_hours: int | None = None
    max_sessions: int | None = None
    ip_allowlist: list[str] = field(default_factory=list)

    def as_settings(self) -> dict:
        values = {"require_mfa": self.require_mfa, "mfa_grace_days": self.mfa_grace_days,
                  "idle_timeout_minutes": self.idle_timeout_minutes,
                  "absolute_timeout_hours": self.absolute_timeout_hours, "max_sessions": self.max_sessions,
                  "ip_allowlist": self.ip_allowlist}
        return {k: v for k, v in values.items() if v not in (None, [], 0) or k == "require_mfa"}


def update_profile(ctx: TenantContext, data: Profile) -> None:
    tenant = ctx.tenant
    name = data.name.strip()
    if not name or len(name) > 200:
        raise RuleViolation("Give the organization a name (at most 200 characters).", field="name")
    before = {"name": tenant.name, "contact_email": tenant.contact_email}
    tenant.name, tenant.contact_email = name, data.contact_email or None
    after = {"name": tenant.name, "contact_email": tenant.contact_email}
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
