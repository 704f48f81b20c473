"""An organization's connections and their group mappings (sso:manage). Services take the
request's TenantContext, write their audit row in the same transaction and never commit."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import func, select

from .. import audit
from ..accounts.models import User
from ..extensions import db
from ..rules import RuleViolation
from ..sites.models import Site
from ..tenancy import TenantContext, roles
from ..tenancy.queries import lock_tenant
from .models import SsoConnection, SsoGroupMapping, SsoIdentity
from .provider import issuer_problem
from .sealing import seal

MAX_CONNECTIONS = 10
MAX_MAPPINGS = 200  # per connection


@dataclass
class ConnectionData:
    name: str
    issuer: str
    client_id: str
    client_secret: str | None  # None or "": keep the stored one (write-only field)
    default_role: str
    invitations_only: bool
    owner_by_mapping: bool


def snapshot(c: SsoConnection) -> dict:
    # Never the secret, not even sealed: only whether there is one.
    return {"name": c.name, "issuer": c.issuer, "client_id": c.client_id, "enabled": c.enabled,
            "default_role": c.default_role, "invitations_only": c.invitations_only,
            "owner_by_mapping": c.owner_by_mapping, "has_secret": c.client_secret is not None}


def connections(ctx: TenantContext) -> list[SsoConnection]:
    return list(db.session.scalars(select(SsoConnection).where(SsoConnection.tenant_id == ctx.tenant_id)
                                   .order_by(SsoConnection.created_at, SsoConnection.id)))


def get_connection(ctx: TenantContext, connection_id: UUID) -> SsoConnection | None:
    return db.session.scalar(select(SsoConnection).where(SsoConnection.tenant_id == ctx.tenant_id,
                                                         SsoConnection.id == connection_id))


def _check(ctx: TenantContext, data: ConnectionData) -> roles.Role:
    problem = issuer_problem(data.issuer)
    if problem:
        raise RuleViolation(problem, field="issuer")
    role = roles.resolve(ctx.tenant_id, data.default_role)
    if role is None:
        raise RuleViolation("Choose a role from the list.", field="default_role")
    if role.is_owner:
        raise RuleViolation("Nobody becomes an owner by signing in: choose another default role.",
                            field="default_role")
    if data.owner_by_mapping and not ctx.is_owner:
        raise RuleViolation("Only an owner can let group mappings make owners.", field="owner_by_mapping")
    return role


def create(ctx: TenantContext, data: ConnectionData) -> SsoConnection:
    _check(ctx, data)
    lock_tenant(ctx.tenant)
    count = db.session.scalar(select(func.count()).select_from(SsoConnection)
                              .where(SsoConnection.tenant_id == ctx.tenant_id))
    if count >= MAX_CONNECTIONS:
        raise RuleViolation(f"An organization can have up to {MAX_CONNECTIONS} connections.", field="name")
    row = SsoConnection(tenant_id=ctx.tenant_id, id=uuid.uuid4(), name=data.name, issuer=data.issuer.rstrip("/"),
                        client_id=data.client_id, default_role=data.default_role, enabled=False,
                        invitations_only=data.invitations_only, owner_by_mapping=data.owner_by_mapping,
                        created_by=ctx.user_id)
    if data.client_secret:
        row.client_secret = seal(data.client_secret, tenant_id=ctx.tenant_id, row_id=row.id)
    db.session.add(row)
    db.session.flush()  # written before its audit row (lock order: rows, then the chain)
    audit.record(ctx.tenant_id, ctx.user_id, "sso.connection_create", "sso_connection", row.id, after=snapshot(row))
    return row


def update(ctx: TenantContext, row: SsoConnection, data: ConnectionData) -> SsoConnection:
    _check(ctx, data)
    if row.owner_by_mapping and not data.owner_by_mapping and not ctx.is_owner:
        raise RuleViolation("Only an owner can change whether group mappings make owners.", field="owner_by_mapping")
    lock_tenant(ctx.tenant)
    before = snapshot(row)
    row.name, row.issuer, row.client_id = data.name, data.issuer.rstrip("/"), data.client_id
    row.default_role, row.invitations_only, row.owner_by_mapping = (data.default_role, data.invitations_only,
                                                                   data.owner_by_mapping)
    secret_changed = bool(data.client_secret)
    if secret_changed:
        row.client_secret = seal(data.client_secret, tenant_id=ctx.tenant_id, row_id=row.id)
    db.session.flush()
    after = snapshot(row)
    if after != before or secret_changed:
        audit.record(ctx.tenant_id, ctx.user_id, "sso.connection_update", "sso_connection", row.id, before=before,
                     after=after, secret_replaced=secret_changed)
    return row


def set_enabled(ctx: TenantContext, row: SsoConnection, enabled: bool) -> None:
    if row.enabled == enabled:
        raise RuleViolation(f"{row.name} is already {'enabled' if enabled else 'disabled'}.")
    lock_tenant(ctx.tenant)
    before = snapshot(row)
    row.enabled = enabled
    db.session.flush()
    audit.record(ctx.tenant_id, ctx.user_id, "sso.connection_enable" if enabled else "sso.connection_disable",
                 "sso_connection", row.id, before=before, after=snapshot(row))


def delete(ctx: TenantContext, row: SsoConnection) -> None:
    lock_tenant(ctx.tenant)
    audit.record(ctx.tenant_id, ctx.user_id, "sso.connection_delete", "sso_connection", row.id, before=snapshot(row))
    db.session.delete(row)  # its mappings and identity links go with it (ON DELETE CASCADE)


# --- group mappings ------------------------------------------------------------------------

def mappings(ctx: TenantContext, row: SsoConnection) -> list[SsoGroupMapping]:
    return list(db.session.scalars(select(SsoGroupMapping).where(
        SsoGroupMapping.tenant_id == ctx.tenant_id, SsoGroupMapping.connection_id == row.id)
        .order_by(SsoGroupMapping.group_name)))


def get_mapping(ctx: TenantContext, row: SsoConnection, mapping_id: UUID) -> SsoGroupMapping | None:
    return db.session.scalar(select(SsoGroupMapping).where(
        SsoGroupMapping.tenant_id == ctx.tenant_id, SsoGroupMapping.connection_id == row.id,
        SsoGroupMapping.id == mapping_id))


def _mapping_snapshot(m: SsoGroupMapping, role: roles.Role | None, site_names: list[str]) -> dict:
    return {"group": m.group_name, "external_id": m.external_id, "role": role.name if role else m.role_key,
            "sites": site_names}


def add_mapping(ctx: TenantContext, row: SsoConnection, group: str, external_id: str | None, role_key: str,
                site_ids: list[UUID]) -> SsoGroupMapping:
    group = group.strip()
    if not group:
        raise RuleViolation("Enter the group's name or path, e.g. /acme/technicians.", field="group")
    role = roles.resolve(ctx.tenant_id, role_key)
    if role is None:
        raise RuleViolation("Choose a role from the list.", field="role")
    if role.is_owner and not row.owner_by_mapping:
        raise RuleViolation("Mapping a group to Owner needs “Group mappings may make owners” on this connection "
                            "(an owner's choice).", field="role")
    if not roles.may_grant(ctx, role):
        raise RuleViolation(f"You cannot map a group to {role.name}: it allows more than your own role does.",
                            field="role")
    sites = dict(db.session.execute(select(Site.id, Site.name).where(Site.tenant_id == ctx.tenant_id,
                                                                     Site.id.in_(site_ids))).all()) if site_ids else {}
    if len(sites) != len(set(site_ids)):
        raise RuleViolation("Choose sites from the list.", field="sites")
    lock_tenant(ctx.tenant)
    if db.session.scalar(select(func.count()).select_from(SsoGroupMapping).where(
            SsoGroupMapping.tenant_id == ctx.tenant_id, SsoGroupMapping.connection_id == row.id)) >= MAX_MAPPINGS:
        raise RuleViolation(f"A connection can have up to {MAX_MAPPINGS} group mappings.", field="group")
    if db.session.scalar(select(SsoGroupMapping.id).where(
            SsoGroupMapping.tenant_id == ctx.tenant_id, SsoGroupMapping.connection_id == row.id,
            SsoGroupMapping.group_name == group)):
        raise RuleViolation(f"{group} is already mapped; delete that mapping first to change it.", field="group")
    mapping = SsoGroupMapping(tenant_id=ctx.tenant_id, connection_id=row.id, group_name=group,
                              external_id=external_id or None, role_key=role.key, site_ids=sorted(sites) or None)
    db.session.add(mapping)
    db.session.flush()
    audit.record(ctx.tenant_id, ctx.user_id, "sso.mapping_create", "sso_group_mapping", mapping.id,
                 after=_mapping_snapshot(mapping, role, sorted(sites.values())), connection=row.name)
    return mapping


def delete_mapping(ctx: TenantContext, row: SsoConnection, mapping: SsoGroupMapping) -> None:
    lock_tenant(ctx.tenant)
    role = roles.resolve(ctx.tenant_id, mapping.role_key)
    audit.record(ctx.tenant_id, ctx.user_id, "sso.mapping_delete", "sso_group_mapping", mapping.id,
                 before=_mapping_snapshot(mapping, role, []), connection=row.name)
    db.session.delete(mapping)


def identities(ctx: TenantContext, row: SsoConnection, limit: int = 50) -> list[tuple[SsoIdentity, str]]:
    """The latest linked accounts of a connection, with their email: the console's external ids."""
    return list(db.session.execute(
        select(SsoIdentity, User.email).join(User, User.id == SsoIdentity.user_id)
        .where(SsoIdentity.tenant_id == ctx.tenant_id, SsoIdentity.connection_id == row.id)
        .order_by(SsoIdentity.last_sign_in_at.desc().nulls_last()).limit(limit)).all())


def links_of_user(user_id: UUID, tenant_ids) -> list[tuple[UUID, str, str, list[str]]]:
    """(tenant id, connection name, subject, groups) of an account's single sign-on links, read
    tenant by tenant under each one's RLS: the system console's external ids (keycloak_id)."""
    from ..database.context import tenant_scope
    out = []
    for tenant_id in tenant_ids:
        with tenant_scope(db.session, tenant_id, actor=None):
            rows = db.session.execute(select(SsoConnection.name, SsoIdentity.subject, SsoIdentity.groups).join(
                SsoConnection, (SsoConnection.tenant_id == SsoIdentity.tenant_id)
                & (SsoConnection.id == SsoIdentity.connection_id)).where(
                SsoIdentity.tenant_id == tenant_id, SsoIdentity.user_id == user_id)).all()
        out += [(tenant_id, name, subject, list(groups or [])) for name, subject, groups in rows]
    return out
