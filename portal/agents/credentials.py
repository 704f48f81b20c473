"""Agent credentials: a per-device secret, shown once, stored as its SHA-256.

Why SHA-256 and not argon2id: the secret is 32 random bytes from `secrets` (256 bits), so there
is nothing to guess — a slow hash protects low-entropy human passwords against offline guessing
and would only cost every heartbeat tens of milliseconds of CPU. Why not an HMAC keyed by
SECRET_KEY: rotating the app's key would then silently invalidate every agent in the field.
The hash is looked up with equality in an index; a wrong secret finds nothing.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import select, text

from .. import audit
from ..database.context import BOUNDS_TEXT, adopt, timeouts
from ..devices.models import Device, DeviceStatus
from ..extensions import db
from ..rules import RuleViolation
from ..tenancy import TenantContext
from .models import AgentCredential

PREFIX = "pda_"  # portal device agent: recognisable in a leaked config file or a secret scanner


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def live_credential(ctx: TenantContext, device: Device) -> AgentCredential | None:
    return db.session.scalar(select(AgentCredential).where(
        AgentCredential.tenant_id == ctx.tenant_id, AgentCredential.device_id == device.id,
        AgentCredential.revoked_at.is_(None)))


def issue(ctx: TenantContext, device: Device, *, gateway: bool | None = None) -> str:
    """A new secret for the device's agent (the old one, if any, stops working now). Returns the
    secret: the only time it exists outside the agent. A rotation keeps the old credential's
    gateway flag unless `gateway` says otherwise (a gateway that lost it would have its batch
    heartbeats refused)."""
    if device.status == DeviceStatus.DECOMMISSIONED:
        raise RuleViolation(f"{device.name} is decommissioned: it cannot get an agent credential.")
    old = live_credential(ctx, device)
    if gateway is None:
        gateway = bool(old and old.gateway)
    if old is not None:
        old.revoked_at = datetime.now(UTC)
        db.session.flush()  # the partial unique index allows one live credential: retire the old one first
    secret = new_secret()
    credential = AgentCredential(tenant_id=ctx.tenant_id, device_id=device.id, secret_hash=hash_secret(secret),
                                 gateway=gateway, created_by=ctx.user_id)
    db.session.add(credential)
    db.session.flush()  # the audit row names the credential
    audit.record(ctx.tenant_id, ctx.user_id, "agent.credential_rotate" if old else "agent.credential_issue",
                 "device", device.id, after={"name": device.name, "credential_id": str(credential.id),
                                             "gateway": gateway},
                 before={"name": device.name, "credential_id": str(old.id), "gateway": old.gateway} if old else None)
    return secret


def revoke(ctx: TenantContext, device: Device) -> bool:
    credential = live_credential(ctx, device)
    if credential is None:
        return False
    credential.revoked_at = datetime.now(UTC)
    audit.record(ctx.tenant_id, ctx.user_id, "agent.credential_revoke", "device", device.id,
                 before={"name": device.name, "credential_id": str(credential.id), "gateway": credential.gateway})
    return True


@dataclass(frozen=True)
class AgentPrincipal:
    """The device whose agent is calling, in its tenant (whose RLS context is now set)."""
    tenant_id: UUID
    device_id: UUID
    credential_id: UUID
    gateway: bool
    device_name: str
    device_status: DeviceStatus

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor("agent", self.device_id, self.device_name)


# And the actor the function set ("agent:<device id>": the device's agent writes as the system
# for its device, or a gateway's), read back, and the request's bounds.
_ACTOR = "current_setting('app.actor', true) AS db_actor"
_LOOKUP = text(f"SELECT c.*, {_ACTOR}, {BOUNDS_TEXT} FROM portal_agent_credential(:h) c")
# A heartbeat that changes only "last seen" and metrics writes soft state the next one rewrites: its
# commit need not wait for the WAL flush. A crash may lose the last fraction of a second of such
# heartbeats (never part of one); services.heartbeat turns it back on before any audit row.
_LOOKUP_SOFT = text(f"SELECT c.*, set_config('synchronous_commit', 'off', true) AS soft, {_ACTOR}, {BOUNDS_TEXT} "
                    "FROM portal_agent_credential(:h) c")


def authenticate(secret: str, *, soft: bool = False) -> AgentPrincipal | None:
    """The credential's device, entering its tenant for the rest of the request (the SQL function
    sets app.tenant_id); None for an unknown or revoked secret, or a tenant not in use."""
    if not secret.startswith(PREFIX) or len(secret) > 100:
        return None
    row = db.session.execute(_LOOKUP_SOFT if soft else _LOOKUP, {"h": hash_secret(secret), **timeouts()}).first()
    if row is None:
        return None
    # The function has set them; later transactions of the request get them too.
    adopt(tenant_id=row.a_tenant_id, actor=row.db_actor)
    return AgentPrincipal(row.a_tenant_id, row.a_device_id, row.a_credential_id, row.a_gateway, row.a_device_name,
                          DeviceStatus(row.a_device_status))
