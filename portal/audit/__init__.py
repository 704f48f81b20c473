"""The audit trail: every change writes a row in the same transaction, chained per tenant
(see chain.py for the hash chain and its canonical serialization)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from flask import g, has_request_context, request
from sqlalchemy import text

from ..extensions import db

# The one writer (migration 0008): locks the tenant's chain for the rest of the transaction,
# reads its head and inserts the rows chained, in one round trip however many rows.
_APPEND = text("SELECT audit_append(CAST(:tenant AS uuid), CAST(:rows AS jsonb))")


@dataclass(frozen=True)
class Actor:
    """A principal that is not a person, such as a device's agent: its rows have no user_id and
    name it in details["actor"] ({"kind", "id", "name"}), which the hash chain covers too."""
    kind: str
    id: UUID
    name: str

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "id": str(self.id), "name": self.name}


def actor_label(details: Any) -> str | None:
    """"the agent of Gateway 7" for a row written by a non-person actor, else None (never a
    possessive of a typed name: "‘Walk Meter 1’’s agent")."""
    actor = details.get("actor") if isinstance(details, dict) else None
    if not isinstance(actor, dict):
        return None
    if actor.get("kind") == "agent":
        return f"the agent of {actor.get('name') or 'a device'}"
    if actor.get("type") == "api_client":
        return f"API client {actor.get('name') or actor.get('id')}"
    if actor.get("type") == "scim_token":  # an identity provider provisioning (portal/scim)
        return f"SCIM token ‘{actor.get('name') or actor.get('id')}’"
    return actor.get("name") or actor.get("kind")


def _context() -> dict[str, Any]:
    if not has_request_context():
        return {"ip_address": None, "user_agent": None, "request_id": None}
    return {"ip_address": request.remote_addr, "user_agent": (request.user_agent.string or "")[:500] or None,
            "request_id": g.get("request_id")}


def client_actor() -> dict[str, Any] | None:
    """The API client acting in this request (portal.api sets it): rows it causes name it as
    their actor in `details.actor`, with user_id NULL (audit_logs.user_id references users;
    `details` is part of the hashed row, so the actor is covered by the chain)."""
    return g.get("audit_client_actor") if has_request_context() else None


def _row(actor_id, action, resource_type, resource_id, before, after, details, context) -> dict[str, Any]:
    if isinstance(actor_id, Actor):
        details, actor_id = {**details, "actor": actor_id.describe()}, None
    elif actor_id is None and (client := client_actor()) is not None:
        details = {"actor": client, **details}
    elif actor_id is not None and has_request_context() and (via := g.get("audit_via")) is not None:
        details = {"via": via, **details}  # a person acting through an app they allowed (api.auth)
    return {"id": str(uuid4()), "user_id": str(actor_id) if actor_id else None, "action": action,
            "resource_type": resource_type, "resource_id": str(resource_id) if resource_id is not None else None,
            "before": before, "after": after, "details": details, **context}


def _append(tenant_id: UUID, rows: list[dict[str, Any]]) -> None:
    db.session.execute(_APPEND, {"tenant": str(tenant_id), "rows": json.dumps(rows, allow_nan=False)})


def record(tenant_id: UUID, actor_id: UUID | Actor | None, action: str, resource_type: str,
           resource_id: Any = None, *, before: dict | None = None, after: dict | None = None,
           **details: Any) -> UUID:
    """Append one audit row to the tenant's chain; returns its id."""
    row = _row(actor_id, action, resource_type, resource_id, before, after, details, _context())
    _append(tenant_id, [row])
    return UUID(row["id"])


def record_many(tenant_id: UUID, actor_id: UUID | Actor | None, action: str, resource_type: str,
                changes: list[tuple[Any, dict | None, dict | None]], **details: Any) -> int:
    """One row per (resource_id, before, after), as record() writes them, in one round trip."""
    context = _context()
    rows = [_row(actor_id, action, resource_type, rid, before, after, details, context)
            for rid, before, after in changes]
    for start in range(0, len(rows), 5000):  # bounded statements for big imports
        _append(tenant_id, rows[start:start + 5000])
    return len(rows)
