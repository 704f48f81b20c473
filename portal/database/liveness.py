"""Dropped pooled connections, found without a round trip per checkout.

SQLAlchemy's `pool_pre_ping` sends a statement on every checkout: a round trip on every request
(3% of a list request under load). Instead:

- at checkout, a look at the connection's socket, no round trip: a server that restarted or
  terminated the backend has sent its goodbye and closed, so the socket is readable and libpq
  reads the end of the connection. Such a connection is refused and the whole pool is
  invalidated (after a restart every pooled connection is dead): the pool connects anew, or
  fails with the usual OperationalError (a 503) while the server is down;
- a connection that died without a word (the server's host gone) fails at its first statement;
  SQLAlchemy then invalidates it and the pool, and the request's first statement, the request
  context, is retried once on a fresh connection (`retrying_once`).
"""
from __future__ import annotations

import select

import sqlalchemy.exc
from sqlalchemy import event


def _dropped(dbapi_connection) -> bool:
    """Whether the server has closed this psycopg connection (no I/O unless it has spoken)."""
    if dbapi_connection.closed or dbapi_connection.broken:
        return True
    pgconn = dbapi_connection.pgconn
    try:
        readable, _, _ = select.select([pgconn.socket], [], [], 0)
    except (OSError, ValueError):
        return True
    if not readable:
        return False  # the usual case: an idle connection has nothing to say
    try:
        pgconn.consume_input()  # a notice, or the server's goodbye and EOF
    except Exception:  # noqa: BLE001 (psycopg.OperationalError: the connection is gone)
        return True
    return pgconn.status != 0  # CONNECTION_OK


def _checkout(dbapi_connection, connection_record, connection_proxy):  # noqa: ARG001
    if _dropped(dbapi_connection):
        # The pool discards this one (and every connection older than now), then connects anew.
        raise sqlalchemy.exc.InvalidatePoolError("the server closed this pooled connection")


def install(engine) -> None:
    if not event.contains(engine.pool, "checkout", _checkout):
        event.listen(engine.pool, "checkout", _checkout)


def retrying_once(session, work):
    """`work()` (the request's first statement), once more on a fresh connection when the
    connection it got turned out to be dead (invalidated by SQLAlchemy). Only for a first
    statement: nothing of the transaction is lost by starting it again."""
    try:
        return work()
    except sqlalchemy.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        session.rollback()
        return work()
