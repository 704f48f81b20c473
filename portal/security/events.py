"""Sign-in history. Successes are written with the sign-in itself; failures in a short
transaction of their own, so they are kept although the request that saw them rolls back."""
from __future__ import annotations

from uuid import UUID

from flask import has_request_context, request
from sqlalchemy import insert

from ..extensions import db
from .models import LoginEvent


def record(email: str, *, success: bool, reason: str, user_id: UUID | None = None,
           method: str = "password") -> None:
    values = {"email": (email or "")[:320], "success": success, "reason": reason, "user_id": user_id,
              "method": method}
    if has_request_context():
        values["ip_address"] = request.remote_addr
        values["user_agent"] = (request.user_agent.string or "")[:500] or None
    if success:
        db.session.add(LoginEvent(**values))
        return
    with db.engine.begin() as conn:
        conn.execute(insert(LoginEvent).values(**values))
