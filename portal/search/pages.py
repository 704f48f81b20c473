"""The pages the palette offers: the navigation's destinations the actor's role may open, and
the account's pages. An endpoint that does not exist (an area not installed) is left out."""
from __future__ import annotations

from typing import NamedTuple

from flask import current_app, url_for
from flask_login import current_user

from ..tenancy import Permission, TenantContext


class Page(NamedTuple):
    label: str
    url: str
    hint: str  # what it is, e.g. "Organization" or "Account"


# (label, endpoint, permission, words it is also found by), in the navigation's order.
TENANT_PAGES = (
    ("Dashboard", "dashboard.index", Permission.TENANT_VIEW, "home overview"),
    ("Sites", "sites.index", Permission.SITES_VIEW, "locations"),
    ("Devices", "devices.index", Permission.DEVICES_VIEW, "fleet"),
    ("Tasks", "tasks.index", Permission.TASKS_VIEW, "work"),
    ("Task board", "tasks.board", Permission.TASKS_VIEW, "kanban"),
    ("Analytics", "analytics.index", Permission.ANALYTICS_VIEW, "charts events"),
    ("Members", "members.index", Permission.MEMBERS_VIEW, "people users team"),
    ("Invitations", "invitations.index", Permission.INVITATIONS_MANAGE, "invite people"),
    ("Roles", "roles.index", Permission.ROLES_MANAGE, "permissions"),
    ("Integrations", "integrations.index", Permission.INTEGRATIONS_VIEW, "webhooks sources inbound events"),
    ("API clients", "api_clients.index", Permission.API_MANAGE, "oauth tokens"),
    ("Audit log", "audit.index", Permission.AUDIT_VIEW, "history events"),
    ("Settings", "settings.general", Permission.TENANT_MANAGE, "organization general name"),
    ("Branding", "settings.branding", Permission.TENANT_MANAGE, "settings logo colour color"),
    ("Security policy", "settings.security", Permission.TENANT_MANAGE, "settings two-factor sessions"),
    ("Plan and usage", "settings.plan", Permission.TENANT_MANAGE, "settings limits billing"),
    ("Data export", "settings.export", Permission.TENANT_MANAGE, "settings download"),
    ("Danger zone", "settings.danger", Permission.TENANT_MANAGE, "settings delete organization"),
    ("New device", "devices.create", Permission.DEVICES_WRITE, "add create"),
    ("Import devices", "devices.import_csv", Permission.DEVICES_WRITE, "csv upload"),
    ("New site", "sites.create", Permission.SITES_WRITE, "add create location"),
    ("New task", "tasks.create", Permission.TASKS_WRITE, "add create"),
)
ACCOUNT_PAGES = (
    ("Account", "profile.profile", "profile name email"),
    ("Password and two-factor", "profile.security", "2fa totp security password"),
    ("Two-factor authentication", "profile.two_factor", "2fa totp set up"),
    ("Sessions", "profile.sessions", "signed in browsers"),
    ("My tasks", "mytasks.index", "assigned"),
    ("Notifications", "notifications.index", "bell inbox"),
    ("Organizations", "switcher.index", "tenants switch"),
)


def _matches(query: str, label: str, words: str) -> bool:
    """Every word typed starts a word of the label or of its other words ("new d": New device)."""
    known = f"{label} {words}".lower().replace("-", " ").split()
    return all(any(word.startswith(part) for word in known) for part in query.lower().split())


def pages(ctx: TenantContext | None, query: str) -> list[Page]:
    """The pages matching `query` (every one when it is empty) that the actor may open."""
    known = current_app.view_functions
    found = []
    if ctx is not None:
        found += [Page(label, url_for(endpoint), ctx.tenant.name) for label, endpoint, needed, words in TENANT_PAGES
                  if endpoint in known and ctx.can(needed) and _matches(query, label, words)]
    found += [Page(label, url_for(endpoint), "Account") for label, endpoint, words in ACCOUNT_PAGES
              if endpoint in known and _matches(query, label, words)]
    if getattr(current_user, "is_system_admin", False) and "admin.tenants" in known and \
            _matches(query, "System console", "admin tenants users"):
        found.append(Page("System console", url_for("admin.tenants"), "Administration"))
    return found
