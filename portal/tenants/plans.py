"""Plans: their limits and features, copied onto a tenant when its plan is set."""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from .models import LIMITS, Plan, Tenant, TenantType

# The seeds' tenant types and the plans they start on.
PLAN_OF_TYPE = {TenantType.ENTERPRISE: "enterprise", TenantType.STANDARD: "pro", TenantType.STARTER: "starter",
                TenantType.TRIAL: "free", TenantType.DEMO: "free"}
TYPE_OF_PLAN = {"enterprise": TenantType.ENTERPRISE, "pro": TenantType.STANDARD, "starter": TenantType.STARTER,
                "free": TenantType.TRIAL}


def plans() -> list[Plan]:
    return list(db.session.scalars(select(Plan).order_by(Plan.position)))


def get_plan(key: str) -> Plan | None:
    return db.session.get(Plan, key) if key else None


def apply_plan(tenant: Tenant, plan: Plan) -> None:
    """The plan and a copy of its limits (a tenant's own overrides are set afterwards)."""
    tenant.plan = plan.key
    for limit in LIMITS:
        setattr(tenant, limit, getattr(plan, limit))


def has_feature(tenant: Tenant, feature: str) -> bool:
    """The tenant's plan includes `feature`, or the tenant has it on top of its plan."""
    if feature in (tenant.features or ()):
        return True
    plan = get_plan(tenant.plan)
    return plan is not None and feature in plan.features


# Features a system administrator may give a tenant on top of its plan (the console's checkboxes).
FEATURES = {"api": "The JSON API and API clients", "sso": "Single sign-on", "audit_export": "Audit log exports",
            "webhooks": "Outbound webhooks", "json_source": "HTTP JSON sources",
            "inbound_events": "Inbound signed events"}
