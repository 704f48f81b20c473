"""The tenant and user of the current transaction, for row-level security.

Set with set_config(..., true) as each transaction begins (SQLAlchemy
`after_begin`), so a pooled connection never carries them to the next request.
"""
from __future__ import annotations

from uuid import UUID

from flask import g, has_app_context
from sqlalchemy import event

_SET = "SELECT set_config('app.tenant_id', %(t)s, true), set_config('app.user_id', %(u)s, true)"


def _current() -> dict[str, str]:
    if not has_app_context():
        return {"t": "", "u": ""}
    return {"t": g.get("db_tenant_id", ""), "u": g.get("db_user_id", "")}


def _apply(session, transaction, connection):  # noqa: ARG001
    connection.exec_driver_sql(_SET, _current())


def install(session_class) -> None:
    if not event.contains(session_class, "after_begin", _apply):
        event.listen(session_class, "after_begin", _apply)


def set_context(session, *, tenant_id: UUID | str | None = ..., user_id: UUID | str | None = ...) -> None:
    """Change the tenant and/or user for this and every later transaction of the app context."""
    if tenant_id is not ...:
        g.db_tenant_id = str(tenant_id) if tenant_id else ""
    if user_id is not ...:
        g.db_user_id = str(user_id) if user_id else ""
    session = session() if hasattr(session, "registry") else session  # a scoped_session proxies
    if session.in_transaction():
        session.connection().exec_driver_sql(_SET, _current())


class tenant_scope:
    """`with tenant_scope(session, tenant_id):` for CLI code that works tenant by tenant."""

    def __init__(self, session, tenant_id):
        self.session, self.tenant_id = session, tenant_id

    def __enter__(self):
        self.previous = g.get("db_tenant_id", "")
        set_context(self.session, tenant_id=self.tenant_id)
        return self

    def __exit__(self, *exc):
        set_context(self.session, tenant_id=self.previous or None)
