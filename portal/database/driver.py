"""Driver SQL on the session's own connection, for the statements every request runs (the
request context) and those of the most viewed page (the device page's menus and plan room).

SQLAlchemy builds a result's metadata anew for each execution of driver SQL (there is no
compiled statement to keep it on): for the request-context function's 30 columns that was
about a tenth of a signed-in request's Python time. `first_row` and `all_rows` run the statement through the
same DBAPI connection, in the same transaction, and keeps what SQLAlchemy's path gives:
anything listening to the engine's statements (statement counters in tests, tracing) gets
SQLAlchemy's path itself; errors arrive as SQLAlchemy's exceptions; a connection found dead is
invalidated, with the pool, so the caller may retry (database.liveness.retrying_once).
"""
from __future__ import annotations

import psycopg
import sqlalchemy.exc
from psycopg.rows import namedtuple_row


def first_row(session, sql: str, params: dict):
    """The first row of `sql` (psycopg's %(name)s placeholders) as a named tuple, or None."""
    return _run(session, sql, params, one=True)


def all_rows(session, sql: str, params: dict) -> list:
    """Every row of `sql` as named tuples."""
    return _run(session, sql, params, one=False)


def _run(session, sql: str, params: dict, one: bool):
    conn = session.connection()
    if conn.dispatch.before_cursor_execute or conn.dispatch.after_cursor_execute:
        result = conn.exec_driver_sql(sql, params)
        return result.first() if one else result.all()
    dbapi = conn.connection.driver_connection
    try:
        with dbapi.cursor(row_factory=namedtuple_row) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone() if one else cursor.fetchall()
    except psycopg.Error as exc:
        gone = dbapi.broken or dbapi.closed
        if gone:
            # As SQLAlchemy does on a disconnect: this connection, and every pooled one as old
            # (a server that went away took them all), are replaced.
            conn.invalidate(exc)
            conn.engine.dispose(close=False)
        raise sqlalchemy.exc.DBAPIError.instance(sql, params, exc, psycopg.Error,
                                                 connection_invalidated=gone) from exc
