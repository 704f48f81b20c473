"""Tenant-scoped URLs: /t/<tenant_slug>/..., the tenant loaded once per request."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import wraps

from flask import Blueprint, Flask, abort, flash, g, redirect, request, url_for
from flask_login import current_user, login_required, logout_user

from ..tenants.models import SLUG
from .permissions import Permission, role_can
from .queries import enter_tenant


def tenant_blueprint(name: str, import_name: str, path: str = "") -> Blueprint:
    """A blueprint under /t/<tenant_slug>; every view sees g.tenant and g.membership."""
    bp = Blueprint(name, import_name, url_prefix="/t/<tenant_slug>" + path)
    bp.url_value_preprocessor(_load_tenant)
    bp.url_defaults(_fill_slug)
    bp.before_request(_require_member)
    return bp


def _load_tenant(endpoint, values):
    slug = values.pop("tenant_slug", None)
    # Only a well-formed slug reaches SQL (the session loader enters the tenant); any other
    # is no tenant at all, the same 404 as an unknown one.
    g.tenant_slug = slug if slug and SLUG.fullmatch(slug) else ""


def _fill_slug(endpoint, values):
    if "tenant_slug" not in values and g.get("tenant") is not None:
        values["tenant_slug"] = g.tenant.slug


@login_required
def _require_member():
    """Not a member, unknown slug or unusable tenant: the same 404, so nothing leaks."""
    tenant, membership = enter_tenant(g.tenant_slug or "", current_user.id)
    if membership is None:
        abort(404)  # the transaction, with whatever it set, is rolled back
    g.tenant, g.membership = tenant, membership
    refused = _security_policy(tenant)
    if refused is not None:
        return refused
    if request.method == "GET":
        # Only reads touch it: a change request must take the tenant lock before any row lock.
        _touch(membership)


def _security_policy(tenant):
    """A tenant may demand two-factor and shorter sessions than the portal's defaults."""
    from ..security import login, sessions
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


ACTIVITY_RESOLUTION = timedelta(minutes=5)


def _touch(membership) -> None:
    """Keep `last_active_at` for the member list, writing at most once per five minutes."""
    now = datetime.now(timezone.utc)
    if membership.last_active_at is None or now - membership.last_active_at > ACTIVITY_RESOLUTION:
        membership.last_active_at = now


def can(permission: Permission | str) -> bool:
    membership = g.get("membership")
    return membership is not None and role_can(membership.role, Permission(permission))


def requires(permission: Permission, *, post: Permission | None = None):
    """Guard a tenant view; POST may need a stronger permission than GET."""
    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            needed = post if post is not None and request.method == "POST" else permission
            if not can(needed):
                abort(403, "Your role in this organization does not allow this.")
            return view(*args, **kwargs)
        wrapped.permission = permission  # read by the authorization matrix test
        return wrapped
    return decorator


def init_app(app: Flask) -> None:
    from . import switcher
    app.jinja_env.globals["can"] = can
    app.jinja_env.globals["Permission"] = Permission
    app.register_blueprint(switcher.bp)
