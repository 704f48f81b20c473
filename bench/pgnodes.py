"""Streaming replicas of a PostgreSQL server, with the binaries pgserver ships (pginstall/bin): used by
`make cluster` (bench.cluster) and by the replica tests. A replica is `pg_basebackup -R` of the primary
(over its Unix socket, where pgserver's initdb trusts local replication connections), started with
pg_ctl on a Unix socket in its own data directory. As root, PostgreSQL runs as pgserver's system user,
as the embedded server does."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url


def bin_dir() -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def system_user() -> str | None:
    """The user PostgreSQL runs as: pgserver's own when we are root (postgres refuses root)."""
    return "pgserver" if os.geteuid() == 0 else None


def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    user = system_user()
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, cwd="/",
                          user=user, **kwargs)


def socket_dir(url: str) -> str:
    """The Unix socket folder of a libpq/SQLAlchemy URL (host=/path in its query, or as its host)."""
    parsed = make_url(url)
    return parsed.query.get("host") or parsed.host or ""


def with_socket(url: str, folder: Path | str) -> str:
    """`url` pointed at another server's socket folder (same role, same database)."""
    parsed = make_url(url)
    return parsed.set(host=None, port=None, query={**parsed.query, "host": str(folder)}).render_as_string(
        hide_password=False)


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _own(path: Path) -> None:
    """A data directory PostgreSQL accepts: private to the user it runs as, parents traversable."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    user = system_user()
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        for parent in path.parents:
            if parent == parent.parent:
                break
            parent.chmod(parent.stat().st_mode | 0o055)


class Replica:
    """A streaming replica in `pgdata`, made from the primary at `primary_url` (a superuser URL)."""

    def __init__(self, pgdata: Path, primary_url: str):
        self.pgdata = Path(pgdata).resolve()
        self.primary_url = primary_url

    @property
    def socket(self) -> Path:
        return self.pgdata  # short enough for a socket path under instance/

    def url(self, role_url: str) -> str:
        """`role_url` (a URL of the primary) pointed at this replica."""
        return with_socket(role_url, self.socket)

    def create(self) -> "Replica":
        if self.pgdata.exists():
            self.stop()
            shutil.rmtree(self.pgdata)
        _own(self.pgdata)
        primary = make_url(self.primary_url)
        _run([bin_dir() / "pg_basebackup", "-h", socket_dir(self.primary_url), "-p", primary.port or 5432,
              "-U", primary.username or "postgres", "-D", self.pgdata, "-R", "-X", "stream", "-c", "fast"],
             timeout=300)
        # The primary's socket lock (pgserver keeps its socket in the data directory) and its list of users.
        for stale in [*self.pgdata.glob(".s.PGSQL.*"), self.pgdata / ".handle_pids.json"]:
            stale.unlink(missing_ok=True)
        with open(self.pgdata / "postgresql.auto.conf", "a") as conf:
            # Long exports on the replica are not cancelled by the primary's vacuum (recovery conflicts).
            conf.write("hot_standby = on\nhot_standby_feedback = on\n")
        return self

    def start(self) -> "Replica":
        _run([bin_dir() / "pg_ctl", "-D", self.pgdata, "-w", "-t", "60", "-l", self.pgdata / "log.txt",
              "-o", f"-h '' -k {self.socket}", "start"], timeout=90)
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            _run([bin_dir() / "pg_ctl", "-D", self.pgdata, "-w", "-m", mode, "stop"], timeout=90)

    def running(self) -> bool:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            return False
        except PermissionError:
            return True
        return True

    def admin_url(self) -> str:
        return self.url(self.primary_url)

    def sql(self, statement: str):
        with psycopg.connect(libpq(self.admin_url()), autocommit=True) as conn:
            return conn.execute(statement).fetchone()

    def wait_caught_up(self, timeout: float = 30) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        with psycopg.connect(libpq(self.primary_url), autocommit=True) as conn:
            target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        deadline = time.time() + timeout
        while time.time() < deadline:
            caught_up = self.sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")[0]
            if caught_up:
                return
            time.sleep(0.05)
        raise TimeoutError(f"the replica in {self.pgdata} did not replay up to {target} in {timeout} s")
