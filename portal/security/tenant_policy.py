"""A tenant's security policy, enforced on every request that enters the tenant: the networks
its members may come from, shorter sessions than the portal's defaults, and two-factor
authentication (after a grace period for members to enrol)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import flash, g, redirect, request, url_for
from flask_login import current_user, logout_user

from ..errors import render_error
from . import login, network, sessions


def enforce(ctx):
    tenant = ctx.tenant
    policy = login.policy(tenant)
    if not network.allowed(request.remote_addr, policy.get("ip_allowlist")):
        return render_error(403, f"{tenant.name} accepts connections only from its own networks, and your address "
                                 f"({request.remote_addr}) is not one of them.")
    if sessions.violates(policy):
        sessions.end_current()
        logout_user()
        flash(f"{tenant.name} requires you to sign in again.", "info")
        return redirect(url_for("accounts.login", next=request.full_path), 303)
    # A passkey sign-in satisfies it: the device and the PIN or biometric that unlocked it.
    if policy.get("require_mfa") is True and not current_user.has_mfa and not login.passkey_session():
        deadline = mfa_deadline(policy)
        if deadline is not None and datetime.now(timezone.utc) < deadline:
            g.mfa_deadline = deadline  # the page says so until then
            return None
        flash(f"{tenant.name} requires two-factor authentication: set it up to continue, or sign in with a "
              "passkey.", "info")
        return redirect(url_for("profile.two_factor", next=request.full_path), 303)
    return None


def mfa_deadline(policy: dict) -> datetime | None:
    """When a required second factor starts to be enforced (saved time plus the grace days)."""
    since, days = policy.get("mfa_required_since"), policy.get("mfa_grace_days")
    if not since or not isinstance(days, int) or days <= 0:
        return None
    try:
        return datetime.fromisoformat(since) + timedelta(days=days)
    except (TypeError, ValueError):
        return None
