"""The tenant, user and (during invitation acceptance) token hash of the current
transaction, and what its principal may do, read by the row-level security policies.

Set with set_config(..., true) as each transaction begins (SQLAlchemy
`after_begin`), so a pooled connection never carries them to the next request.

What the principal may do (migration 0027, docs/isolation.md "The database checks permissions"):
- `app.permissions`: permission codes, set by the statement that authenticated the request
  (a member's roles, an API token's scopes, an inbound hook's `events:write`) and recorded with
  `adopt` so later transactions of the request get them too;
- `app.site_ids`: the sites an API client or a person's token is limited to (a member's are
  their assignments, read by the policies);
- `app.actor`: an explicit system actor ("job:invitations.expire", "cli:api.create-client",
  "invitation:accept", "agent:<device id>", ...), which the permission policies let write
  whatever the tenant policy allows. Set only by `tenant_scope(..., actor)`, `acting_as(...)` and
  the entry functions of device agents, SCIM and the OAuth endpoints; a member's request never
  has one (portal_enter_tenant clears it), so every place that writes as the system says so here.
"""
from __future__ import annotations

import re

from flask import current_app, g, has_app_context, has_request_context
from sqlalchemy import event

# setting name -> attribute of flask.g holding its value for this app context
SETTINGS = {"app.tenant_id": "db_tenant_id", "app.user_id": "db_user_id", "app.token_hash": "db_token_hash",
            "app.verified_email": "db_verified_email", "app.permissions": "db_permissions",
            "app.site_ids": "db_site_ids", "app.actor": "db_actor"}
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


def set_context(session, *, tenant_id=_UNSET, user_id=_UNSET, token_hash=_UNSET, verified_email=_UNSET,
                actor=_UNSET, permissions=_UNSET, site_ids=_UNSET) -> None:
    """Change the values for this and every later transaction of the app context."""
    for attr, value in (("db_tenant_id", tenant_id), ("db_user_id", user_id), ("db_verified_email", verified_email),
                        ("db_actor", actor), ("db_permissions", permissions), ("db_site_ids", site_ids)):
        if value is not _UNSET:
            setattr(g, attr, str(value) if value else "")
    if token_hash is not _UNSET:
        g.db_token_hash = token_hash.hex() if token_hash else ""
    session = session() if hasattr(session, "registry") else session  # a scoped_session proxies
    if session.in_transaction():
        session.connection().exec_driver_sql(*_bounded(_current()))


def adopt(*, tenant_id=_UNSET, user_id=_UNSET, permissions=_UNSET, actor=_UNSET, site_ids=_UNSET) -> None:
    """Record values that the current statement has already set with set_config (see
    tenancy.queries.enter_tenant, security.sessions.load, api.auth.enter), so later transactions
    get them too. `permissions`: the codes the entry function put in app.permissions (a list, or
    the setting's text as read back); `actor`, `site_ids`: the settings' text as read back."""
    if permissions is not _UNSET:
        # Kept as given (codes, or the setting's text read back): most requests begin no later
        # transaction, so never need it joined (_current).
        g.db_permissions = permissions or ""
    for attr, value in (("db_tenant_id", tenant_id), ("db_user_id", user_id), ("db_actor", actor),
                        ("db_site_ids", site_ids)):
        if value is not _UNSET:
            setattr(g, attr, str(value) if value else "")


# An actor names who writes and why: "<kind>:<what>", e.g. "job:invitations.expire".
ACTOR = re.compile(r"[a-z][a-z0-9_-]*:\S+")
# A scope without an actor reads the tenant whole and changes nothing a permission guards.
READS_ONLY = "sites:see-all"


def _actor(actor: str | None) -> str:
    if actor is not None and not (isinstance(actor, str) and ACTOR.fullmatch(actor)):
        raise ValueError(f"an actor is 'kind:what' (e.g. 'job:invitations.expire'), not {actor!r}")
    return actor or ""


def _restore(session, failed: bool, **values) -> None:
    """set_context on leaving a scope. After an error the transaction may be unusable (it is
    rolled back next, and the next one begins with these values): the error is the one to see."""
    try:
        set_context(session, **values)
    except Exception:
        if not failed:
            raise
        for name, value in values.items():
            setattr(g, f"db_{name}", str(value) if value else "")


def _flush_inside(session) -> None:
    # Changes made in a scope are written under its RLS context: flushed later (at commit,
    # outside it) the policies would hide their rows and the UPDATE match none, or refuse them.
    session = session() if hasattr(session, "registry") else session
    if session.new or session.dirty or session.deleted:
        session.flush()


class tenant_scope:
    """`with tenant_scope(session, tenant_id, actor="job:invitations.expire"):` for code that
    works tenant by tenant outside a member's request (jobs, commands, the console, sample data)
    or beside one (an SSO sign-in, an account's deletion). `actor` says who writes and why: the
    permission policies (migration 0027) let it write what the tenant policy allows, and nothing
    else sets it. `actor=None`: the scope reads (every site) and writes nothing a permission
    guards. A member's permissions never carry into a scope; they come back when it ends."""

    def __init__(self, session, tenant_id, actor: str | None):
        self.session, self.tenant_id, self.actor = session, tenant_id, _actor(actor)

    def __enter__(self):
        self.previous = {name: g.get(f"db_{name}", "") for name in ("tenant_id", "actor", "permissions", "site_ids")}
        set_context(self.session, tenant_id=self.tenant_id, actor=self.actor,
                    permissions="" if self.actor else READS_ONLY, site_ids="")
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            _flush_inside(self.session)
        _restore(self.session, exc_type is not None, **{name: value or None for name, value in self.previous.items()})


class acting_as:
    """`with acting_as(session, "invitation:accept"):` writes in the current tenant as an explicit
    system actor, for a request whose principal is not (yet) a member with the permission: an
    invitee accepting, a signed inbound hook writing its integration's state, an owner cancelling
    the tenant's deletion (its members' permissions are reads only then). The policies let the
    actor write what the tenant policy allows; the previous actor (none, in a request) comes back
    when it ends."""

    def __init__(self, session, actor: str):
        if not actor:
            raise ValueError("acting_as needs an actor")
        self.session, self.actor = session, _actor(actor)

    def __enter__(self):
        self.previous = g.get("db_actor", "")
        set_context(self.session, actor=self.actor)
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            _flush_inside(self.session)
        _restore(self.session, exc_type is not None, actor=self.previous or None)


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
        _flush_inside(self.session)
        set_context(self.session, user_id=self.user_id)
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            _flush_inside(self.session)  # and what was changed inside, under this user's context
        set_context(self.session, user_id=self.previous or None)
