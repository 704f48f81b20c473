"""The tenant, user and (during invitation acceptance) token hash of the current
transaction, read by the row-level security policies.

Set with set_config(..., true) as each transaction begins (SQLAlchemy
`after_begin`), so a pooled connection never carries them to the next request.
"""
from __future__ import annotations

from flask import current_app, g, has_app_context, has_request_context
from sqlalchemy import event

# setting name -> attribute of flask.g holding its value for this app context
SETTINGS = {"app.tenant_id": "db_tenant_id", "app.user_id": "db_user_id", "app.token_hash": "db_token_hash",
            "app.verified_email": "db_verified_email", "app.permissions": "db_permissions"}
_SET = "SELECT " + ", ".join(f"set_config('{name}', %({attr})s, true)" for name, attr in SETTINGS.items())
_UNSET = object()
# A request's transactions are also bounded (database.conflicts); jobs and commands are not. The
# statements that begin a request (its session, bearer token or agent credential) carry these
# columns too, so the bounds cost no round trip of their own; values from `timeouts()`.
BOUNDS = ("set_config('lock_timeout', %(lock_timeout)s, true) AS lock_timeout, "
          "set_config('statement_timeout', %(statement_timeout)s, true) AS statement_timeout")
BOUNDS_TEXT = BOUNDS.replace("%(lock_timeout)s", ":lock_timeout").replace("%(statement_timeout)s", ":statement_timeout")
_SET_BOUNDED = _SET + ", " + BOUNDS


def _current() -> dict[str, str]:
    if not has_app_context():
        return {attr: "" for attr in SETTINGS.values()}
    values = {attr: g.get(attr, "") for attr in SETTINGS.values()}
    if not isinstance(values["db_permissions"], str):  # adopted as codes: joined only when needed
        values["db_permissions"] = ",".join(sorted(str(p) for p in values["db_permissions"]))
    return values


def _bounded(values: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The statement that sets `values`: in a request, with its timeouts too (database.conflicts)."""
    if not has_request_context():
        return _SET, values
    return _SET_BOUNDED, {**values, **timeouts()}


def timeouts() -> dict[str, str]:
    """A request transaction's lock_timeout and statement_timeout (DB_LOCK_TIMEOUT, DB_STATEMENT_TIMEOUT)."""
    config = current_app.config
    return {"lock_timeout": config["DB_LOCK_TIMEOUT"], "statement_timeout": config["DB_STATEMENT_TIMEOUT"]}


def _apply(session, transaction, connection):  # noqa: ARG001
    values = _current()
    # Settings made with set_config(..., true) end with their transaction, so a new one starts
    # with them empty: a statement is needed only to set something (one round trip less per
    # request). A signed-in request's first statement sets its timeouts itself (security.sessions).
    if any(values.values()):
        connection.exec_driver_sql(*_bounded(values))


def install(session_class) -> None:
    if not event.contains(session_class, "after_begin", _apply):
        event.listen(session_class, "after_begin", _apply)


def set_context(session, *, tenant_id=_UNSET, user_id=_UNSET, token_hash=_UNSET, verified_email=_UNSET) -> None:
    """Change the values for this and every later transaction of the app context."""
    for attr, value in (("db_tenant_id", tenant_id), ("db_user_id", user_id), ("db_verified_email", verified_email)):
        if value is not _UNSET:
            setattr(g, attr, str(value) if value else "")
    if token_hash is not _UNSET:
        g.db_token_hash = token_hash.hex() if token_hash else ""
    session = session() if hasattr(session, "registry") else session  # a scoped_session proxies
    if session.in_transaction():
        session.connection().exec_driver_sql(*_bounded(_current()))


def adopt(*, tenant_id=_UNSET, user_id=_UNSET, permissions=_UNSET) -> None:
    """Record values that the current statement has already set with set_config (see
    tenancy.queries.enter_tenant, security.sessions.load), so later transactions get them too.
    `permissions`: the codes `portal_enter_tenant` put in app.permissions."""
    if permissions is not _UNSET:
        # Kept as given: most requests begin no later transaction, so never need the text (_current).
        g.db_permissions = permissions or ""
    for attr, value in (("db_tenant_id", tenant_id), ("db_user_id", user_id)):
        if value is not _UNSET:
            setattr(g, attr, str(value) if value else "")


class tenant_scope:
    """`with tenant_scope(session, tenant_id):` for code that works tenant by tenant."""

    def __init__(self, session, tenant_id):
        self.session, self.tenant_id = session, tenant_id

    def __enter__(self):
        self.previous = g.get("db_tenant_id", "")
        set_context(self.session, tenant_id=self.tenant_id)
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            # Changes made in the scope are written under its RLS context: flushed later (at
            # commit, outside it) the policies would hide their rows and the UPDATE match none.
            session = self.session() if hasattr(self.session, "registry") else self.session
            if session.new or session.dirty or session.deleted:
                session.flush()
        set_context(self.session, tenant_id=self.previous or None)


def _flush(session) -> None:
    session = session() if hasattr(session, "registry") else session
    if session.new or session.dirty or session.deleted:
        session.flush()


class user_scope:
    """`with user_scope(session, user_id):` reads and writes what that user may of their own rows
    (sessions, sign-ins, passkeys, links, notifications: the `user_own` policies; their
    memberships in every tenant through `membership_self_read`), for the paths that act for a
    person who is not the signed-in user: the console, jobs, sign-in before it completes."""

    def __init__(self, session, user_id):
        self.session, self.user_id = session, user_id

    def __enter__(self):
        self.previous = g.get("db_user_id", "")
        # What was changed before is written under the context it was changed in: flushed inside
        # the scope (autoflush), another user's policies would hide its rows (an UPDATE of the
        # signed-in person's session record would match none).
        _flush(self.session)
        set_context(self.session, user_id=self.user_id)
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            _flush(self.session)  # and what was changed inside, under this user's context
        set_context(self.session, user_id=self.previous or None)
