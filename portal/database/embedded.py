"""The embedded PostgreSQL (PyPI pgserver) used when DATABASE_URL is unset.

pgserver stops postgres when the last process using it exits normally; a
process ended by SIGTERM skips that, so SIGTERM is turned into a normal exit.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from .provision import provision, url_for_role

DATABASE = "portal"
OWNER_ROLE = "portal_owner"
APP_ROLE = "portal_app"

_servers: dict[Path, object] = {}


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
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    _servers[pgdata] = server
    return server


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
