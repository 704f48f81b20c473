"""A tenant's security policy, enforced on every request that enters the tenant: it may
demand two-factor authentication and shorter sessions than the portal's defaults."""
from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_login import current_user, logout_user

from . import login, sessions


def enforce(ctx):
    tenant = ctx.tenant
    policy = login.policy(tenant)
    if sessions.violates(policy):
        sessions.end_current()
        logout_user()
        flash(f"{tenant.name} requires you to sign in again.", "info")
        return redirect(url_for("accounts.login", next=request.full_path), 303)
    if policy.get("require_mfa") is True and not current_user.has_mfa:
        flash(f"{tenant.name} requires two-factor authentication: set it up to continue.", "info")
        return redirect(url_for("profile.two_factor", next=request.full_path), 303)
    return None
