"""Heavy reads on a streaming replica (DATABASE_REPLICA_URL), under the same row-level security.

The replica is a physical copy of the primary: the same roles, policies and functions. A block of
reads runs there with `with reads():` (or a view under `@on_replica`, or a streamed body through
`streamed(...)`): inside it, the request's session sends its statements to the replica's engine,
and the session's `after_begin` listener (database.context) sets the same tenant, user and
timeouts on that connection as on the primary's. Writes never go there: a flush always goes to
the primary, and the replica itself refuses anything else (a hot standby is read-only).

Read-your-writes: a request whose transaction wrote something keeps the primary's WAL position
after its commit in the person's session cookie (and in `g` for the rest of the request). Their
reads use the replica only once `pg_last_wal_replay_lsn()` is at or past that position; a job
asks for the primary's position when it starts (`reads(fresh=True)`). A replica that is down,
or whose replay is more than DATABASE_REPLICA_MAX_LAG seconds behind, is skipped: the reads run
on the primary, as without a replica. A replica found down is not tried again for
DATABASE_REPLICA_RETRY_SECONDS.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from contextlib import contextmanager

import sqlalchemy as sa
from flask import current_app, g, has_request_context, session as cookie
from flask_sqlalchemy.session import Session as FlaskSession

log = logging.getLogger(__name__)
COOKIE_KEY = "wal"  # the person's last write's WAL position, "X/Y"
# Lag: none while the replica has replayed all it has received (an idle primary sends nothing,
# and the last replayed transaction's age would grow for no reason); otherwise the age of the
# last transaction it replayed.
_STATUS = sa.text("SELECT pg_last_wal_replay_lsn()::text AS replayed, CASE WHEN pg_last_wal_receive_lsn() "
                  "IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 ELSE coalesce(extract(epoch FROM "
                  "clock_timestamp() - pg_last_xact_replay_timestamp()), 0) END::float AS lag")
_down_until: dict[int, float] = {}
_lock = threading.Lock()


class RoutingSession(FlaskSession):
    """db.session's class: statements go to `_replica` while a `reads()` block has set it, except
    a flush, which always goes to the primary."""

    _replica = None

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if self._replica is not None and bind is None and not self._flushing:
            return self._replica
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


def install(app) -> None:
    """The replica's engine, when DATABASE_REPLICA_URL is set (the app factory calls this)."""
    url = app.config.get("DATABASE_REPLICA_URL")
    if not url:
        return
    from . import liveness
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = dict(options.pop("connect_args", {}))
    connect_args.setdefault("connect_timeout", 2)  # a replica whose host is gone must not hold pages for long
    engine = sa.create_engine(url, connect_args=connect_args, **options)
    liveness.install(engine)  # pooled connections dropped by a replica restart are noticed at checkout
    app.extensions["replica_engine"] = engine


def parse_lsn(text: str | None) -> int:
    """A pg_lsn's text ("16/B374D848") as a number, to compare positions."""
    if not text:
        return 0
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def _needed(fresh: bool, primary_session) -> int:
    if fresh:  # a job: everything committed before it started
        return parse_lsn(primary_session.execute(sa.text("SELECT pg_current_wal_lsn()::text")).scalar())
    if has_request_context():
        return parse_lsn(g.get("replica_wal") or cookie.get(COOKIE_KEY))
    return 0


def usable(needed: int = 0):
    """The replica's engine when it answers, is at most DATABASE_REPLICA_MAX_LAG behind and has
    replayed up to `needed`; otherwise None (and why, for the metrics and the log)."""
    engine = current_app.extensions.get("replica_engine")
    if engine is None:
        return None, "none"
    config = current_app.config
    if _down_until.get(id(engine), 0) > time.monotonic():
        return None, "down"
    try:
        with engine.connect() as conn:
            row = conn.execute(_STATUS).one()
    except sa.exc.DBAPIError as exc:
        with _lock:
            _down_until[id(engine)] = time.monotonic() + float(config["DATABASE_REPLICA_RETRY_SECONDS"])
        log.warning("read replica unavailable, reading from the primary: %s", str(exc.orig or exc).strip()[:200])
        return None, "down"
    if row.replayed is None:  # not a standby (promoted, or pointed at a primary): nothing to compare
        return None, "not_standby"
    if row.lag > float(config["DATABASE_REPLICA_MAX_LAG"]):
        return None, "lag"
    if parse_lsn(row.replayed) < needed:
        return None, "behind_write"
    return engine, "replica"


@contextmanager
def reads(session=None, *, fresh: bool = False, wait: float = 0):
    """Run the block's statements on the replica when it may serve them (see the module's doc);
    yields "replica" or why not. Nested blocks keep the outer block's choice. `wait`: seconds to
    give a replica that is up but not yet at the position needed (a job's: the commit that queued
    it is milliseconds old, and the job is long)."""
    from ..extensions import db
    session = session if session is not None else db.session()
    if session._replica is not None or "replica_engine" not in current_app.extensions:
        yield "replica" if session._replica is not None else "none"
        return
    needed = _needed(fresh, session)
    engine, where = usable(needed)
    deadline = time.monotonic() + wait
    while where == "behind_write" and time.monotonic() < deadline:
        time.sleep(0.02)
        engine, where = usable(needed)
    _count(where)
    if engine is None:
        yield where
        return
    session._replica = engine
    try:
        yield where
    finally:
        session._replica = None


def on_replica(view):
    """A view whose reads may all run on the replica (it writes nothing)."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        with reads():
            return view(*args, **kwargs)
    return wrapper


def streamed(chunks):
    """A streamed body (a generator run after the request's commit) read on the replica."""
    with reads():
        yield from chunks


def wrote(session) -> bool:
    """Before the request's commit: whether its transaction changed anything (only asked when a
    replica is configured: a round trip)."""
    if "replica_engine" not in current_app.extensions:
        return False
    if session.new or session.dirty or session.deleted:
        return True
    if not session.in_transaction():
        return False
    return bool(session.execute(sa.text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")).scalar())


def remember_position() -> None:
    """After the commit of a request that wrote: the primary's WAL position, which the replica must
    have replayed before it serves this person (kept in their cookie while signed in)."""
    from ..extensions import db
    with db.engine.connect() as conn:
        position = conn.execute(sa.text("SELECT pg_current_wal_lsn()::text")).scalar()
    g.replica_wal = position
    if "sid" in cookie:  # a browser session: API clients get no cookie for it
        cookie[COOKIE_KEY] = position


def _count(where: str) -> None:
    from .. import metrics
    metrics.REPLICA_READS.labels(where).inc()
