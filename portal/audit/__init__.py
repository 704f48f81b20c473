"""The audit trail: every change writes a row in the same transaction."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import g, has_request_context, request

from ..extensions import db
from .models import AuditLog


def record(tenant_id: UUID, actor_id: UUID | None, action: str, resource_type: str,
           resource_id: Any = None, *, before: dict | None = None, after: dict | None = None,
           **details: Any) -> AuditLog:
    entry = AuditLog(tenant_id=tenant_id, user_id=actor_id, action=action, resource_type=resource_type,
                     resource_id=str(resource_id) if resource_id is not None else None,
                     before=before, after=after, details=details)
    if has_request_context():
        entry.ip_address = request.remote_addr
        entry.user_agent = (request.user_agent.string or "")[:500] or None
        entry.request_id = g.get("request_id")
    db.session.add(entry)
    return entry
