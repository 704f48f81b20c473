"""Plan limits, checked where things are created. The caller counts what its area holds under
the tenant's lock (tenancy.queries.lock_tenant), so concurrent creations cannot pass a limit
together; this module says whether there is room, in one wording."""
from __future__ import annotations

from ..rules import RuleViolation
from ..words import possessive
from ..tenants.models import Tenant

WHAT = {"max_users": "users", "max_sites": "active sites", "max_devices": "devices in service",
        "max_integrations": "integrations", "max_api_clients": "API clients"}


def room_left(tenant: Tenant, limit: str, used: int, allowed: int | None = None) -> dict:
    """For a page: how much room the plan leaves, and why a create button is off when none.
    `allowed`: the limit when the caller read it with `used` (else the tenant's)."""
    allowed = getattr(tenant, limit) if allowed is None else allowed
    return {"free": max(allowed - used, 0), "allowed": allowed, "used": used, "what": WHAT[limit]}


def require_room(tenant: Tenant, limit: str, used: int, adding: int = 1, field: str | None = None) -> None:
    allowed = getattr(tenant, limit)
    if used + adding > allowed:
        free = max(allowed - used, 0)
        asked = f"; this adds {adding}" if adding > 1 else ""
        raise RuleViolation(f"{possessive(tenant.name)} plan allows {allowed:,} {WHAT[limit]} and {free:,} "
                            f"{'is' if free == 1 else 'are'} free{asked}. Ask a system administrator for a "
                            "bigger plan.", field=field)
