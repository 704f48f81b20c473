"""Driver SQL on the session's own connection, for the statements every request runs (the
request context) and those of the most viewed page (the device page's menus and plan room).

SQLAlchemy builds a result's metadata anew for each execution of driver SQL (there is no
compiled statement to keep it on): for the request-context function's 30 columns that was
about a tenth of a signed-in request's Python time. `first_row` and `all_rows` run the statement
on the same DBAPI connection, in the same transaction, and keep what SQLAlchemy's path gives:
anything listening to the engine's statements (statement counters in tests, tracing) gets
SQLAlchemy's path itself; errors arrive as SQLAlchemy's exceptions; a connection found dead is
invalidated, with the pool, so the caller may retry (database.liveness.retrying_once).
"""
from __future__ import annotations

from functools import lru_cache

import psycopg
import sqlalchemy.exc
from psycopg.rows import namedtuple_row


@lru_cache(maxsize=2048)  # statements are built once per shape by their callers (lru_cache there too)
def _compiled(statement, dialect):
    return statement.compile(dialect=dialect)


def driver_sql(session, statement, values: dict) -> tuple[str, dict]:
    """A SQLAlchemy statement that its caller builds once per shape, as driver SQL and its
    parameters for `first_row`/`all_rows`: compiled once per dialect, not walked per request."""
    compiled = _compiled(statement, session.connection().dialect)
    return compiled.string, compiled.construct_params(values)


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
