"""The embedded PostgreSQL (PyPI pgserver) used when DATABASE_URL is unset.

pgserver stops postgres when the last process using it exits normally; a
process ended by SIGTERM skips that, so SIGTERM is turned into a normal exit.
A process killed outright (kill -9, the OOM killer) stays on pgserver's list of
users, and then no later exit would count as the last: dead entries are dropped
when a process joins and again just before it leaves.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .provision import provision, url_for_role

DATABASE = "portal"
OWNER_ROLE = "portal_owner"
APP_ROLE = "portal_app"

# pgserver's list of the processes using a server, in its data directory.
HANDLES = ".handle_pids.json"

_servers: dict[Path, object] = {}
log = logging.getLogger(__name__)


def _exit_on_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


def start(pgdata: Path):
    """Start (or join) the embedded server whose data lives in `pgdata`."""
    pgdata = pgdata.resolve()
    if pgdata in _servers:
        return _servers[pgdata]
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # pgserver keeps a lock file in the runtime dir, chosen at import time.
    runtime = pgdata.parent / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    import pgserver

    _exit_on_sigterm()
    forget_dead_users(pgdata)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    # atexit runs last-registered first: this runs before pgserver's own clean-up decides
    # whether this process is the last user and stops the server.
    atexit.register(forget_dead_users, pgdata)
    _servers[pgdata] = server
    return server


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True


def forget_dead_users(pgdata: Path) -> list[int]:
    """Drop the processes on pgserver's list that no longer run; returns the ones that do.
    Under pgserver's own lock (the one it takes to add and remove entries)."""
    from pgserver.postgres_server import PostgresServer

    path = pgdata / HANDLES
    with PostgresServer._lock:
        try:
            pids = json.loads(path.read_text()) if path.exists() else []
        except ValueError:  # cut short by a crash mid-write: nobody can be counted on it
            pids = None
        live = [pid for pid in pids or [] if isinstance(pid, int) and _alive(pid)]
        if live != pids:
            log.warning("Embedded PostgreSQL in %s: dropping processes that no longer run from its users "
                        "(%s), so the last one to exit stops it", pgdata, pids)
            path.write_text(json.dumps(live))
    return live


def admin_url(server) -> str:
    return server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)


def configure(cfg: dict) -> None:
    """Point DATABASE_URL/MIGRATION_DATABASE_URL at the embedded server, provisioning it once."""
    instance = Path(cfg["INSTANCE_DIR"])
    server = start(instance / "pgdata")
    admin = admin_url(server)
    marker = instance / "pgdata" / ".portal_provisioned"
    if not marker.exists():
        provision(admin, DATABASE, OWNER_ROLE, APP_ROLE)
        marker.write_text("roles and database created\n")
    cfg["DATABASE_URL"] = url_for_role(admin, APP_ROLE, DATABASE)
    cfg["MIGRATION_DATABASE_URL"] = url_for_role(admin, OWNER_ROLE, DATABASE)
    cfg["EMBEDDED_DATABASE"] = True
