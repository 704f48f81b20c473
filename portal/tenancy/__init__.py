"""How a request enters a tenant, in one place.

Tenant-scoped URLs are /t/<tenant_slug>/... (`tenant_blueprint`). The slug is checked for form
before any SQL; the session loader (security.sessions.load) then calls the database function
`portal_request_context`, which validates the session and, for an active member of a usable
tenant only, sets the row-level security context (`app.tenant_id`) and returns the tenant,
the membership and its role's permissions (tenancy.queries.entered). `_require_member` turns
that into the request's one `TenantContext` (tenancy.context), or a 404 that says nothing
about whether the tenant exists. Views check named permissions with `requires(...)`,
templates with `can(...)`; services receive the context as an argument.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import wraps

from flask import Blueprint, Flask, abort, current_app, g, redirect, request
from flask_login import current_user, login_required

from ..errors import render_error
from ..tenants.models import SLUG
from .context import ClientPrincipal, TenantContext, context_for, current, current_or_none
from .permissions import Permission
from .queries import enter_tenant, renamed

__all__ = ["ClientPrincipal", "TenantContext", "context_for", "current", "current_or_none", "can", "requires", "tenant_blueprint",
           "entry_checks", "works_read_only", "Permission"]

# Checks every tenant request passes after entry, registered by the areas that own them (the
# security area: a tenant's session policy). A check returns a response to refuse, or None.
entry_checks: list[Callable[[TenantContext], object]] = []


def tenant_blueprint(name: str, import_name: str, path: str = "") -> Blueprint:
    """A blueprint under /t/<tenant_slug>; every view runs inside the request's TenantContext."""
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
    ctx = current_or_none()
    if "tenant_slug" not in values and ctx is not None:
        values["tenant_slug"] = ctx.tenant.slug


@login_required
def _require_member():
    """Not a member, unknown slug or unusable tenant: the same 404, so nothing leaks."""
    entry = enter_tenant(g.tenant_slug or "", current_user.id)
    if entry is None:
        moved = renamed(g.tenant_slug, current_user.id) if request.method in ("GET", "HEAD") else None
        if moved:
            return redirect(moved, 308)
        abort(404)  # the transaction, with whatever it set, is rolled back
    tenant, membership, role = entry
    if not tenant.is_readable:
        return _unavailable(tenant, role)
    ctx = g.tenant_context = TenantContext(tenant, membership, role, g.get("request_id"))
    if tenant.is_read_only and request.method not in ("GET", "HEAD") and not _works_read_only():
        abort(423, f"{tenant.name} is {tenant.status.value.replace('_', ' ')}: it can be read, not changed.")
    for check in entry_checks:
        refused = check(ctx)
        if refused is not None:
            return refused
    if request.method == "GET":
        # Only reads touch it: a change request must take the tenant lock before any row lock.
        _touch(membership)


def _unavailable(tenant, role):
    """A suspended tenant: its members are told why, and get nothing else. Its owners are the ones
    who can sort it out, with the service; everyone else, with their owners."""
    reason = tenant.status_reason or ""
    message = f"{tenant.name} is {tenant.status.value.replace('_', ' ')}." + (f" Reason: {reason}" if reason else "")
    if role.is_owner:
        return render_error(423, message + " As its owner, contact the service's support to have it reactivated.")
    # Its rows (the owners' names too) are closed while it is suspended (portal_tenant_readable).
    return render_error(423, message + f" Contact an owner of {tenant.name}: only an owner can have it reactivated"
                                       " by the service.")


def works_read_only(view):
    """Mark a change that a read-only tenant still accepts (cancelling its own deletion)."""
    view.works_read_only = True
    return view


def _works_read_only() -> bool:
    view = current_app.view_functions.get(request.endpoint)
    return bool(getattr(view, "works_read_only", False))


ACTIVITY_RESOLUTION = timedelta(minutes=5)


def _touch(membership) -> None:
    """Keep `last_active_at` for the member list, writing at most once per five minutes."""
    now = datetime.now(timezone.utc)
    if membership.last_active_at is None or now - membership.last_active_at > ACTIVITY_RESOLUTION:
        membership.last_active_at = now


def can(permission: Permission | str) -> bool:
    """Whether the current actor holds `permission` in this request's tenant."""
    ctx = current_or_none()
    return ctx is not None and ctx.can(permission)


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
        wrapped.post_permission = post or permission
        wrapped.works_read_only = getattr(view, "works_read_only", False)
        return wrapped
    return decorator


def init_app(app: Flask) -> None:
    from . import roles, switcher
    app.jinja_env.globals["can"] = can
    app.jinja_env.globals["Permission"] = Permission
    app.jinja_env.globals["role_of"] = roles.role_of
    app.context_processor(lambda: {"ctx": current_or_none()})
    app.register_blueprint(switcher.bp)
