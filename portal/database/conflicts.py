"""Concurrent writes: the one lock order, and what happens when PostgreSQL still gives up.

The lock order (DESIGN "Concurrency: one lock order"). A transaction that writes a tenant's
shared state takes its locks in this order, and never goes back to an earlier step:

1. the tenant row, `FOR NO KEY UPDATE` (`tenancy.queries.lock_tenant`): seats, plan limits,
   owners, roles. NO KEY: the foreign-key checks of every insert that names the tenant (audit
   rows, notifications, devices) take KEY SHARE on the same row and must not wait for it;
2. the rows being changed, in a stable order (devices and tasks by id), also `FOR NO KEY
   UPDATE` where the key stays: device paths that may bring a device back take the tenant lock
   before they lock the device (`devices.queries`);
3. the audit chain's per-tenant advisory lock, taken by `audit_append` as a service's last
   writes. It waits only for another chain append, which waits for nothing this transaction
   holds: an audit row's foreign-key checks need KEY SHARE, which steps 1 and 2 never block.
   (`FOR UPDATE` of the tenant row did block it: with the chain's lock held elsewhere, that was
   the deadlock of mixed writes, 12 to 21 of 48 writes per pair in tests/concurrency.)

Bounds: every request transaction runs with `lock_timeout` and `statement_timeout`
(DB_LOCK_TIMEOUT, DB_STATEMENT_TIMEOUT; set in `database.context`), so a lock problem becomes a
fast, clear error instead of a hung worker.

Should a deadlock, a serialization failure or a lock timeout still happen, the request edge
(`Portal.full_dispatch_request`) rolls back and runs the whole request once more: a request is
one transaction, and everything it causes outside the database (email, jobs) is written in that
transaction, so repeating it repeats nothing. A view that does something outside the database
before its writes (an OpenID code exchange) calls `not_repeatable()`. A second failure is
answered 503 "try again", not "database unavailable".
"""
from __future__ import annotations

import psycopg.errors
from flask import g

# Gave up because of another transaction: running the same request again is expected to succeed.
RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure, psycopg.errors.LockNotAvailable)
# statement_timeout: the work itself is too slow; repeating it would only double the wait.
TOO_SLOW = (psycopg.errors.QueryCanceled,)

# insufficient_privilege: a row-level security policy refused the write (the role does not allow
# it: migration 0027), or a privilege the serving role lacks. The request edge answers 403.
class Refused(Exception):
    """A write the database let through to no row (a DELETE's USING filters silently): raised by
    the service that counted, answered like a policy's error."""


REFUSED = (psycopg.errors.InsufficientPrivilege, Refused)
REFUSED_MESSAGE = "You do not have permission to do that."

TRY_AGAIN = "Someone else was changing the same data at the same moment, so nothing was saved. Please try again."
TOO_SLOW_MESSAGE = "This took too long and was stopped; nothing was saved. Please try again in a moment."


class RetryRequest(Exception):
    """Raised by the error handler to ask the request edge for a second run."""


def _causes(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = getattr(exc, "original_exception", None) or getattr(exc, "orig", None) or exc.__cause__ \
            or exc.__context__


def kind(exc: BaseException | None) -> str | None:
    """"retry" for a deadlock, serialization failure or lock timeout; "slow" for a statement
    timeout; None for anything else."""
    for cause in _causes(exc):
        if isinstance(cause, RETRYABLE):
            return "retry"
        if isinstance(cause, TOO_SLOW):
            return "slow"
    return None


def refused(exc: BaseException | None) -> bool:
    """Whether the database refused what the principal may not do (nothing was written: the
    statement failed, and the request's transaction is rolled back)."""
    return any(isinstance(cause, REFUSED) for cause in _causes(exc))


def not_repeatable() -> None:
    """This request has done something outside the database that must not happen twice."""
    g.not_repeatable = True


def may_repeat() -> bool:
    return not g.get("not_repeatable") and not g.get("repeated")
