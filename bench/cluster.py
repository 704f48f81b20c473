"""`make cluster`: the production shape on one machine, with real parts, until Ctrl-C.

    HAProxy :CLUSTER_PORT (8000) -- health-checks GET /readyz every second
      ├── gunicorn node 1 :CLUSTER_PORT+1 ─┐
      └── gunicorn node 2 :CLUSTER_PORT+2 ─┤  PORTAL_ENV=production
    job worker 1, job worker 2 ────────────┤
                                           ├── PgBouncer :CLUSTER_PORT+3 (transaction pooling) ── primary
                                           └── heavy reads (DATABASE_REPLICA_URL) ─────────────── replica
    Redis :CLUSTER_PORT+4: rate-limit counters shared by every node (RATELIMIT_STORAGE_URI)

The primary is the embedded PostgreSQL 16 (pgserver) in instance/cluster/pgdata; the replica is a
`pg_basebackup -R` of it, streaming, made afresh at each start (bench.pgnodes). Migrations and the
sample data run as `make run` does. Everything runs under instance/cluster (logs in its logs/ folder).
The web nodes and workers run with PORTAL_ENV=production and a SECRET_KEY generated once into
instance/cluster/secret_key. The balancer serves plain HTTP on loopback, so session cookies are not
marked Secure here (SESSION_COOKIE_SECURE=0): put TLS in front of it anywhere else.

HAProxy, PgBouncer and Redis come from Debian's packages (installed with apt-get when missing and
run as root). CLUSTER_REDIS_URL uses a Redis of your own instead of starting one.
The `Cluster` class is also what `make test-cluster` (tests/cluster) drives.
"""
from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PACKAGES = {"haproxy": "haproxy", "pgbouncer": "pgbouncer", "redis-server": "redis-server"}


def ensure_packages(names=("haproxy", "pgbouncer", "redis-server")) -> None:
    """Debian's packages for the commands that are missing, when we may install them (root)."""
    missing = [PACKAGES[name] for name in names if shutil.which(name) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"missing: {', '.join(missing)}; install them (apt-get install {' '.join(missing)}) or run as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(install, env=env, check=True)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, timeout: float = 30, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before listening on {port}")
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def http_status(url: str, timeout: float = 5) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class Cluster:
    """Start, inspect, break and stop the parts; `start()` then `stop()`."""

    def __init__(self, port: int | None = None, folder: Path | None = None, web_workers: int | None = None):
        self.port = port or int(os.environ.get("CLUSTER_PORT") or 8000)
        self.folder = (folder or ROOT / "instance" / "cluster").resolve()
        self.logs = self.folder / "logs"
        self.web_workers = web_workers or int(os.environ.get("CLUSTER_WEB_WORKERS") or 2)
        self.node_ports = [self.port + 1, self.port + 2]
        self.bouncer_port, self.redis_port = self.port + 3, self.port + 4
        self.redis_url = os.environ.get("CLUSTER_REDIS_URL") or f"redis://127.0.0.1:{self.redis_port}/0"
        self.procs: dict[str, subprocess.Popen] = {}
        self.server = None
        self.replica = None
        self.urls: dict[str, str] = {}
        self.restarts: list[str] = []
        self._watching = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- the parts -------------------------------------------------------------------------------
    def _spawn(self, name: str, args: list, env: dict | None = None, user: str | None = None) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")
        # A session of its own: Ctrl-C reaches this process only, which stops the parts in order.
        proc = subprocess.Popen([str(a) for a in args], cwd=ROOT, env=env or os.environ.copy(), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, user=user)
        log.close()
        self.procs[name] = proc
        return proc

    def _stop(self, name: str, sig=signal.SIGTERM, timeout: float = 30) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        if sig == signal.SIGKILL:  # a node lost: gunicorn's workers with its master, at once
            os.killpg(proc.pid, sig)
            proc.wait(timeout)
            deadline = time.time() + timeout
            while time.time() < deadline:  # until its orphaned workers are gone too
                try:
                    os.killpg(proc.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.01)
            return
        else:
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def start_database(self) -> None:
        from bench.pgnodes import Replica
        from portal.database import embedded
        from portal.database.provision import provision, url_for_role
        self.server = embedded.start(self.folder / "pgdata")
        admin = embedded.admin_url(self.server)
        provision(admin, embedded.DATABASE, embedded.OWNER_ROLE, embedded.APP_ROLE)
        app_url = url_for_role(admin, embedded.APP_ROLE, embedded.DATABASE)
        self.urls = {"admin": admin, "app": app_url,
                     "owner": url_for_role(admin, embedded.OWNER_ROLE, embedded.DATABASE)}
        self.replica = Replica(self.folder / "replica", admin)
        self.urls["replica"] = self.replica.url(app_url)
        self.urls["bouncer"] = f"postgresql://{embedded.APP_ROLE}@127.0.0.1:{self.bouncer_port}/{embedded.DATABASE}"

    def migrate_and_seed(self) -> None:
        """As `make run` does: the schema at head, the sample data once (in a child process: this
        one keeps no app, so it holds no pooled connection)."""
        code = ("from flask_migrate import upgrade\nfrom portal import create_app\nfrom portal.extensions import db\n"
                "from portal.seeding import load_sample\napp = create_app()\nwith app.app_context():\n"
                "    upgrade()\n    load_sample(app.config['SEED_PASSWORD']) and db.session.commit()\n")
        env = {**self.env(), "DATABASE_URL": self.urls["app"], "DATABASE_REPLICA_URL": ""}
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)

    def start_replica(self, fresh: bool = False) -> None:
        if fresh or not (self.replica.pgdata / "standby.signal").exists():
            self.replica.create()
        self.replica.start()

    def stop_replica(self) -> None:
        self.replica.stop("fast")

    def _pg_user(self) -> str | None:
        from bench.pgnodes import system_user
        return system_user()

    def start_bouncer(self) -> None:
        from bench.pgnodes import socket_dir
        folder = self.folder / "pgbouncer"
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
        (folder / "users.txt").write_text('"portal_app" ""\n')
        (folder / "pgbouncer.ini").write_text(f"""
[databases]
portal = host={socket_dir(self.urls['app'])} dbname=portal user=portal_app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.bouncer_port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / 'users.txt'}
pool_mode = transaction
default_pool_size = 12
min_pool_size = 0
reserve_pool_size = 2
max_client_conn = 400
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
log_connections = 0
log_disconnections = 0
""")
        proc = self._spawn("pgbouncer", [shutil.which("pgbouncer"), folder / "pgbouncer.ini"], user=self._pg_user())
        wait_for_port(self.bouncer_port, proc=proc)

    def restart_bouncer(self) -> None:
        self._stop("pgbouncer", signal.SIGINT)  # a safe shutdown: transactions in flight finish first
        self.start_bouncer()

    def start_redis(self) -> None:
        if os.environ.get("CLUSTER_REDIS_URL"):
            return
        proc = self._spawn("redis", [shutil.which("redis-server"), "--port", self.redis_port, "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no", "--dir", self.folder])
        wait_for_port(self.redis_port, proc=proc)

    def env(self) -> dict:
        # Production's keys, generated once: SECRET_KEY, and the keyring's master key (PORTAL_MASTER_KEYS,
        # URL-safe base64 of 32 bytes) for versions that require it.
        keys = {}
        for name, make in (("secret_key", lambda: secrets.token_hex(32)),
                           ("master_key", lambda: base64.urlsafe_b64encode(os.urandom(32)).decode())):
            path = self.folder / name
            if not path.exists():
                self.folder.mkdir(parents=True, exist_ok=True)
                path.write_text(make())
                path.chmod(0o600)
            keys[name] = path.read_text().strip()
        env = {**os.environ,
               "PORTAL_ENV": "production", "SECRET_KEY": keys["secret_key"], "PORTAL_MASTER_KEYS": keys["master_key"],
               "INSTANCE_PATH": str(self.folder), "EXPORT_DIR": str(self.folder / "exports"),
               "DATABASE_URL": self.urls["bouncer"], "MIGRATION_DATABASE_URL": self.urls["owner"],
               "DATABASE_REPLICA_URL": self.urls["replica"],
               # PgBouncer 1.18 in transaction mode keeps no prepared statements (and no LISTEN: workers poll).
               "DB_PREPARED_STATEMENTS": "0",
               "BASE_URL": f"http://localhost:{self.port}", "TRUSTED_PROXIES": "1",
               "SESSION_COOKIE_SECURE": "0", "RATELIMIT_STORAGE_URI": self.redis_url,
               "LOG_LEVEL": os.environ.get("LOG_LEVEL") or "WARNING"}
        env.pop("XDG_RUNTIME_DIR", None)
        return env

    def start_node(self, i: int) -> subprocess.Popen:
        port = self.node_ports[i]
        proc = self._spawn(f"web{i + 1}", [BIN / "gunicorn", "--workers", self.web_workers, "--threads", 4,
                                           "--bind", f"127.0.0.1:{port}", "--graceful-timeout", 10,
                                           # Idle connections from HAProxy kept longer than HAProxy keeps them
                                           # (pool-purge-delay, 5 s): gunicorn's default of 2 s closed some
                                           # just as HAProxy sent a request on them.
                                           "--keep-alive", 75,
                                           "--access-logfile", "-", "wsgi:app"], env=self.env())
        wait_for_port(port, timeout=60, proc=proc)
        return proc

    def kill_node(self, i: int) -> None:
        self._stop(f"web{i + 1}", signal.SIGKILL)

    def start_worker(self, i: int) -> subprocess.Popen:
        return self._spawn(f"worker{i + 1}", [BIN / "flask", "--app", "wsgi", "worker"], env=self.env())

    def kill_worker(self, i: int) -> None:
        self._stop(f"worker{i + 1}", signal.SIGKILL)

    def start_balancer(self) -> None:
        servers = "\n".join(f"    server web{i + 1} 127.0.0.1:{p} check inter 1s fall 1 rise 2"
                            for i, p in enumerate(self.node_ports))
        config = self.folder / "haproxy.cfg"
        config.write_text(f"""
global
    maxconn 2000
    log stdout format raw local0
defaults
    mode http
    log global
    option httplog
    option dontlog-normal  # only the requests that failed
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A node that refuses the connection (killed) gets the request sent to the other one.
    option redispatch
    retries 2
    retry-on conn-failure
    option forwardfor
frontend portal
    bind 127.0.0.1:{self.port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}
""")
        proc = self._spawn("haproxy", [shutil.which("haproxy"), "-db", "-f", config])
        wait_for_port(self.port, proc=proc)

    # -- the whole -------------------------------------------------------------------------------
    def start(self) -> "Cluster":
        ensure_packages(("haproxy", "pgbouncer") + (() if os.environ.get("CLUSTER_REDIS_URL") else ("redis-server",)))
        busy = [p for p in [self.port, *self.node_ports, self.bouncer_port]
                + ([] if os.environ.get("CLUSTER_REDIS_URL") else [self.redis_port]) if not port_free(p)]
        if busy:
            raise SystemExit(f"ports in use: {', '.join(map(str, busy))} (set CLUSTER_PORT to move them all)")
        self.start_database()
        self.migrate_and_seed()
        self.start_replica(fresh=True)
        self.start_bouncer()
        self.start_redis()
        for i in range(2):
            self.start_worker(i)
        for i in range(2):
            self.start_node(i)
        self.start_balancer()
        self.wait_ready()
        threading.Thread(target=self._watch, name="cluster-watch", daemon=True).start()
        return self

    def _watch(self) -> None:
        """As a supervisor (systemd's Restart=always) would: a node or worker that exited on its own (one that
        could not reach the database while starting, say) is started again. Those stopped on purpose
        (`_stop`, `kill_node`, `kill_worker`) are no longer in `procs`."""
        starters = {f"web{i + 1}": (lambda i=i: self.start_node(i)) for i in range(2)}
        starters |= {f"worker{i + 1}": (lambda i=i: self.start_worker(i)) for i in range(2)}
        while not self._watching.wait(1):
            for name, start in starters.items():
                proc = self.procs.get(name)
                if proc is not None and proc.poll() is not None and not self._watching.is_set():
                    print(f" ! {name} exited with {proc.returncode}: starting it again (see {self.logs / name}.log)",
                          flush=True)
                    self.restarts.append(name)
                    try:
                        start()
                    except (RuntimeError, TimeoutError) as exc:
                        print(f" ! {name} did not start: {exc}", flush=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if http_status(f"{self.base_url}/readyz") == 200:
                return
            time.sleep(0.3)
        raise TimeoutError(f"{self.base_url}/readyz did not answer 200 in {timeout} s (see {self.logs})")

    def stop(self) -> None:
        self._watching.set()
        for name in ["haproxy", "web1", "web2", "worker1", "worker2", "pgbouncer", "redis"]:
            self._stop(name)
        for name in list(self.procs):
            self._stop(name)
        if self.replica is not None:
            self.replica.stop("fast")
        if self.server is not None:
            self.server.cleanup()  # pgserver stops the primary when its last user (this process) lets go

    def describe(self) -> str:
        return "\n".join([
            f" * Portal (HAProxy, health-checked on /readyz): http://localhost:{self.port}",
            f" * Web nodes (gunicorn, {self.web_workers} workers x 4 threads, production settings): "
            + ", ".join(f"127.0.0.1:{p}" for p in self.node_ports),
            " * Job workers: 2 (flask --app wsgi worker)",
            f" * PgBouncer (transaction pooling) on 127.0.0.1:{self.bouncer_port} -> primary in {self.folder / 'pgdata'}",
            f" * Streaming replica (heavy reads) in {self.replica.pgdata}",
            f" * Redis (shared rate limits): {self.redis_url}",
            f" * Logs: {self.logs}",
            " * Sign in as alice@acme.com (or any sample account in the README) with the password in SEED_PASSWORD "
            "(default portal-demo-2026). Ctrl-C stops everything."])


def main() -> int:
    sys.path.insert(0, str(ROOT))
    cluster = Cluster()

    def interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)  # `kill` stops it as Ctrl-C does
    try:
        cluster.start()
        print(cluster.describe(), flush=True)
        while True:  # nodes and workers are started again by the watch thread
            for name in ("haproxy", "pgbouncer", "redis"):
                proc = cluster.procs.get(name)
                if proc is not None and proc.poll() is not None:
                    print(f" ! {name} exited with {proc.returncode} (see {cluster.logs / name}.log)", flush=True)
                    cluster.procs.pop(name)
            time.sleep(1)
    except KeyboardInterrupt:
        print("\n * Stopping the cluster...", flush=True)
    finally:
        cluster.stop()
    print(" * Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
