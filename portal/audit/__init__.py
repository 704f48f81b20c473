"""The audit trail: every change writes a row in the same transaction."""
from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from flask import g, has_request_context, request
from sqlalchemy import insert

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


def record_many(tenant_id: UUID, actor_id: UUID | None, action: str, resource_type: str,
                changes: list[tuple[Any, dict | None, dict | None]], **details: Any) -> int:
    """One row per (resource_id, before, after), as record() writes them, in one executemany:
    the ORM flush would wait for each row's server-generated columns, one round trip per row
    (10,000 audit rows of an import took 5 s that way)."""
    context: dict[str, Any] = {"ip_address": None, "user_agent": None, "request_id": None}
    if has_request_context():
        context = {"ip_address": request.remote_addr, "user_agent": (request.user_agent.string or "")[:500] or None,
                   "request_id": g.get("request_id")}
    rows = [{"tenant_id": tenant_id, "id": uuid4(), "user_id": actor_id, "action": action,
             "resource_type": resource_type, "resource_id": str(rid) if rid is not None else None,
             "before": before, "after": after, "details": details, **context}
            for rid, before, after in changes]
    if rows:
        db.session.execute(insert(AuditLog.__table__), rows)  # executemany: psycopg pipelines it
    return len(rows)
