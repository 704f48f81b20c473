"""One tenant context per request: who acts, in which tenant, with which role and permissions,
and which sites they see. Built once when the request enters the tenant and handed to
services explicitly."""
from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from flask import abort, g

from ..tenants.models import Tenant
from .models import Membership
from .permissions import Permission
from . import roles
from .roles import Role


@dataclass(frozen=True)
class ClientPrincipal:
    """An API client acting in its tenant (portal.api): a principal with no membership. Its
    permissions are its token's scopes (the context's role); `site_ids` None means every site
    (clients are tenant principals), a tuple restricts it to those sites as a member's
    assignments would."""
    id: UUID
    name: str
    site_ids: tuple[UUID, ...] | None = None
    kind: str = "API client"  # how messages name it: "API client Billing sync", "SCIM token Okta"


@dataclass(frozen=True)
class TenantContext:
    tenant: Tenant
    membership: Membership | None  # None when an API client acts (`client`)
    role: Role
    request_id: str | None = None
    client: ClientPrincipal | None = None
    # The app a member acts through (an OAuth token they granted, portal.api): the actor is the
    # member, with their role capped by the token's scopes.
    via: ClientPrincipal | None = None
    # Plain values, read once: they stay usable after a commit has expired the instances (a
    # streamed export goes on after the request's transaction ends).
    tenant_id: UUID = field(init=False)
    user_id: UUID = field(init=False)  # the actor: audit rows and `created_by` columns name them

    def __post_init__(self):
        object.__setattr__(self, "tenant_id", self.tenant.id)
        object.__setattr__(self, "user_id", self.membership.user_id if self.membership is not None else None)

    @property
    def permissions(self) -> frozenset[Permission]:
        return self.role.permissions

    @property
    def is_owner(self) -> bool:
        return self.role.is_owner

    @property
    def sees_all(self) -> bool:
        """The site scope: every site, or only the sites the actor is assigned to
        (sites.visibility turns it into SQL). A client sees every site unless restricted."""
        if self.client is not None:
            return self.client.site_ids is None
        return Permission.SITES_SEE_ALL in self.role.permissions

    def can(self, permission: Permission | str) -> bool:
        return Permission(permission) in self.role.permissions

    def manages(self, member: Membership) -> bool:
        """Whether the actor may change this member's role or status, or remove them."""
        return (self.membership is not None and self.can(Permission.MEMBERS_MANAGE) and member.user_id != self.user_id
                and roles.may_manage(self, roles.role_of(member)))

    def may_hand_ownership_to(self, member: Membership) -> bool:
        return roles.may_transfer(self, member)


def current() -> TenantContext:
    """The context of this tenant request (views only; services receive it as an argument)."""
    ctx = g.get("tenant_context")
    if ctx is None:
        abort(404)
    return ctx


def current_or_none() -> TenantContext | None:
    return g.get("tenant_context")


def context_for(tenant: Tenant, membership: Membership) -> TenantContext:
    """A context outside a request (sample data, commands, jobs): the member's role as stored.
    The caller has entered the tenant's RLS scope."""
    return TenantContext(tenant, membership, roles.role_of(membership))
