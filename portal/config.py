"""Configuration from the environment (twelve-factor).

Every variable read here is listed in the README with its default.
"""
from __future__ import annotations

import base64
import ipaddress
import os
import secrets
from pathlib import Path

from dotenv import load_dotenv
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("production", "development", "testing")


class ConfigError(RuntimeError):
    """The configuration cannot run safely; the message says what to change."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def allow_private_setting(value, default: bool = False):
    """INTEGRATIONS_ALLOW_PRIVATE: True (every private, loopback and link-local destination), False
    (none), or a tuple of (network, port or None) that outbound requests may reach despite being
    private: `10.1.2.3`, `10.8.0.0/16`, `127.0.0.1:8443`, `[::1]:8443`. Raises ValueError naming a
    bad entry."""
    if isinstance(value, bool):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, str):
        word = value.strip().lower()
        if word in {"1", "true", "yes", "on"}:
            return True
        if word in {"0", "false", "no", "off"}:
            return False
        value = value.split(",")
    if isinstance(value, tuple) and all(isinstance(item, tuple) for item in value):
        return value  # already parsed
    allowed = []
    for raw in value:
        entry = str(raw).strip()
        if not entry:
            continue
        host, port = entry, None
        if entry.startswith("[") and "]:" in entry:
            host, _, port_text = entry[1:].partition("]:")
            port = port_text
        elif entry.startswith("["):
            host = entry.strip("[]")
        elif entry.count(":") == 1:
            host, _, port = entry.partition(":")
        try:
            network = ipaddress.ip_network(host, strict=False)
            port = int(port) if port is not None else None
        except ValueError:
            raise ValueError(f"INTEGRATIONS_ALLOW_PRIVATE entry {entry!r} is not an address, a network "
                             "(10.8.0.0/16) or an address with a port (127.0.0.1:8443).") from None
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"INTEGRATIONS_ALLOW_PRIVATE entry {entry!r} has a port outside 1-65535.")
        allowed.append((network, port))
    return tuple(allowed)


def _sqlalchemy_url(url: str) -> str:
    """Accept plain postgresql:// URLs and pin the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _dev_secret_key(instance: Path) -> str:
    """Development keeps one generated key in instance/ so sessions survive restarts."""
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _dev_master_key(instance: Path) -> str:
    """Development and tests keep one generated master key in instance/, as for SECRET_KEY."""
    path = instance / "master_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


def serve_address(env=None) -> tuple[str, int]:
    """Where `make run` listens: HOST and PORT."""
    env = os.environ if env is None else env
    port = env.get("PORT") or "5000"
    if not port.isdigit():
        raise ConfigError(f"PORT must be a port number, not {port!r}")
    return env.get("HOST") or "127.0.0.1", int(port)


def default_base_url(portal_env: str, env=None) -> str:
    """BASE_URL when unset outside production: emailed links are never built from a request's
    Host header. Development links to the address `make run` serves on; the tests to the host
    Werkzeug's test client uses."""
    if portal_env == "testing":
        return "http://localhost"
    host, port = serve_address(env)
    if host in ("0.0.0.0", "::", "[::]"):  # listening everywhere: this machine is the one sure name
        host = "localhost"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def load(overrides: dict | None = None) -> dict:
    load_dotenv(ROOT / ".env", override=False)  # the real environment wins over .env
    env = os.environ
    overrides = dict(overrides or {})
    portal_env = overrides.get("PORTAL_ENV") or env.get("PORTAL_ENV") or "production"
    if portal_env not in ENVIRONMENTS:
        raise ConfigError(f"PORTAL_ENV must be one of {', '.join(ENVIRONMENTS)}, not {portal_env!r}")
    production = portal_env == "production"
    instance = Path(env.get("INSTANCE_PATH") or ROOT / "instance")

    cfg: dict = {
        "PORTAL_ENV": portal_env,
        "TESTING": portal_env == "testing",
        "INSTANCE_DIR": str(instance),
        "SECRET_KEY": env.get("SECRET_KEY"),
        # The keyring's master keys (portal/keys), comma-separated, newest first: they wrap the data
        # keys that seal TOTP secrets, queued email bodies and tenants' credentials.
        "PORTAL_MASTER_KEYS": env.get("PORTAL_MASTER_KEYS") or "",
        "KEYS_RESEAL_BATCH": int(env.get("KEYS_RESEAL_BATCH") or 500),  # rows per transaction of a key rotation
        "DATABASE_URL": env.get("DATABASE_URL"),
        "MIGRATION_DATABASE_URL": env.get("MIGRATION_DATABASE_URL"),
        # A streaming replica for heavy reads (database.replica): skipped when down or lagging more than
        # DATABASE_REPLICA_MAX_LAG seconds; a replica found down is tried again after RETRY_SECONDS.
        "DATABASE_REPLICA_URL": env.get("DATABASE_REPLICA_URL") or "",
        "DATABASE_REPLICA_MAX_LAG": float(env.get("DATABASE_REPLICA_MAX_LAG") or 10),
        "DATABASE_REPLICA_RETRY_SECONDS": float(env.get("DATABASE_REPLICA_RETRY_SECONDS") or 5),
        "DB_APP_ROLE": env.get("DB_APP_ROLE"),
        "ALLOW_RLS_BYPASS": _bool(env.get("ALLOW_RLS_BYPASS")),
        "SEED_PASSWORD": env.get("SEED_PASSWORD") or "portal-demo-2026",
        "BASE_URL": (env.get("BASE_URL") or "").rstrip("/"),
        # Proxies in front of the portal whose X-Forwarded-For/-Proto it believes (0: none).
        "TRUSTED_PROXIES": int(env.get("TRUSTED_PROXIES") or 0),
        "SMTP_URL": env.get("SMTP_URL") or "",
        "SMTP_TIMEOUT": float(env.get("SMTP_TIMEOUT") or 10),
        "MAIL_FROM": env.get("MAIL_FROM") or "Portal <portal@localhost>",
        "MAIL_RETRY_SECONDS": float(env.get("MAIL_RETRY_SECONDS") or 30),
        "WORKER_CONCURRENCY": int(env.get("WORKER_CONCURRENCY") or 2),
        "WORKER_SHUTDOWN_SECONDS": float(env.get("WORKER_SHUTDOWN_SECONDS") or 30),
        "JOBS_RETENTION_DAYS": int(env.get("JOBS_RETENTION_DAYS") or 7),
        "AGENT_POLL_SECONDS": float(env.get("AGENT_POLL_SECONDS") or 1.0),
        "SIGNIN_EVENTS_RETENTION_DAYS": int(env.get("SIGNIN_EVENTS_RETENTION_DAYS") or 90),
        "ENDED_SESSIONS_RETENTION_DAYS": int(env.get("ENDED_SESSIONS_RETENTION_DAYS") or 30),
        # Off behind a transaction-pooling PgBouncer (1.18 and older keep no prepared statements there).
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or "",
        "DB_PREPARED_STATEMENTS": _bool(env.get("DB_PREPARED_STATEMENTS"), True),
        "INVITATION_TTL_HOURS": int(env.get("INVITATION_TTL_HOURS") or 168),
        "TENANT_DELETION_GRACE_DAYS": int(env.get("TENANT_DELETION_GRACE_DAYS") or 30),
        # A person's own deletion waits this long (signing in meanwhile offers to cancel it).
        "ACCOUNT_DELETION_GRACE_DAYS": int(env.get("ACCOUNT_DELETION_GRACE_DAYS") or 14),
        # Where tenant exports are written: shared by the web servers and the workers.
        "EXPORT_DIR": env.get("EXPORT_DIR") or str(instance / "exports"),
        "INVITATION_RESEND_COOLDOWN": int(env.get("INVITATION_RESEND_COOLDOWN") or 60),
        "LOG_LEVEL": env.get("LOG_LEVEL") or "INFO",
        "DB_POOL_SIZE": int(env.get("DB_POOL_SIZE") or 5),
        # argon2 computations at once per web process (accounts/passwords.py): sign-ins queue.
        "PASSWORD_HASH_CONCURRENCY": int(env.get("PASSWORD_HASH_CONCURRENCY") or 1),
        # Bounds of every request's transaction (database.conflicts): PostgreSQL durations.
        "DB_LOCK_TIMEOUT": env.get("DB_LOCK_TIMEOUT") or "5s",
        "DB_STATEMENT_TIMEOUT": env.get("DB_STATEMENT_TIMEOUT") or "30s",
        "SESSION_IDLE_MINUTES": int(env.get("SESSION_IDLE_MINUTES") or 30),
        "SESSION_ABSOLUTE_HOURS": int(env.get("SESSION_ABSOLUTE_HOURS") or 12),
        "LOGIN_MAX_FAILURES": int(env.get("LOGIN_MAX_FAILURES") or 10),
        "LOGIN_FAILURE_WINDOW_MINUTES": int(env.get("LOGIN_FAILURE_WINDOW_MINUTES") or 15),
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI") or "memory://",
        "RATELIMIT_LOGIN": env.get("RATELIMIT_LOGIN") or "30 per 15 minutes",
        # Redis down: count in this process (with a logged warning) rather than fail sign-in.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        # The JSON API (portal/api): access token lifetime (seconds), per-client rate limit, how long a
        # rotated client secret keeps working, how long an Idempotency-Key's first response is kept.
        "API_TOKEN_TTL": int(env.get("API_TOKEN_TTL") or 3600),
        "API_RATE_LIMIT": env.get("API_RATE_LIMIT") or "600 per minute",
        "API_SECRET_GRACE_HOURS": int(env.get("API_SECRET_GRACE_HOURS") or 24),
        "API_IDEMPOTENCY_HOURS": int(env.get("API_IDEMPOTENCY_HOURS") or 24),
        # Integrations (portal/integrations): webhook retries (first delay, longest delay, attempts),
        # the circuit breaker (failures in a row spanning at least so many hours), timeouts, the
        # inbound signature window, how long the delivery and sync log is kept, pages per sync run.
        "WEBHOOK_RETRY_SECONDS": float(env.get("WEBHOOK_RETRY_SECONDS") or 30),
        "WEBHOOK_RETRY_MAX_SECONDS": float(env.get("WEBHOOK_RETRY_MAX_SECONDS") or 3 * 3600),
        "WEBHOOK_MAX_ATTEMPTS": int(env.get("WEBHOOK_MAX_ATTEMPTS") or 16),
        "WEBHOOK_BREAKER_FAILURES": int(env.get("WEBHOOK_BREAKER_FAILURES") or 20),
        "WEBHOOK_BREAKER_HOURS": float(env.get("WEBHOOK_BREAKER_HOURS") or 12),
        "WEBHOOK_TIMEOUT": float(env.get("WEBHOOK_TIMEOUT") or 10),
        "SOURCE_TIMEOUT": float(env.get("SOURCE_TIMEOUT") or 30),
        "SOURCE_MAX_PAGES": int(env.get("SOURCE_MAX_PAGES") or 100),
        "INBOUND_TOLERANCE_SECONDS": int(env.get("INBOUND_TOLERANCE_SECONDS") or 300),
        "INTEGRATIONS_LOG_DAYS": int(env.get("INTEGRATIONS_LOG_DAYS") or 30),
        "REAUTH_MINUTES": int(env.get("REAUTH_MINUTES") or 10),
        # Outbound requests (portal.egress): private, loopback and link-local destinations. Development
        # and tests allow them (receivers on loopback); production only through an explicit list.
        "INTEGRATIONS_ALLOW_PRIVATE": env.get("INTEGRATIONS_ALLOW_PRIVATE"),
        # Comma-separated host or host:port; empty: the machine's resolver (portal.dns).
        "DNS_NAMESERVERS": env.get("DNS_NAMESERVERS") or "",
        # Passkeys (portal/passkeys/relying_party.py): unset, both follow BASE_URL.
        "WEBAUTHN_RP_ID": (env.get("WEBAUTHN_RP_ID") or "").strip(),
        "WEBAUTHN_ORIGINS": (env.get("WEBAUTHN_ORIGINS") or "").strip(),
        "OIDC_ISSUER": (env.get("OIDC_ISSUER") or "").rstrip("/"),
        "OIDC_CLIENT_ID": env.get("OIDC_CLIENT_ID") or "",
        "OIDC_CLIENT_SECRET": env.get("OIDC_CLIENT_SECRET") or "",
        "OIDC_ALLOW_SIGNUP": _bool(env.get("OIDC_ALLOW_SIGNUP")),
        # Organizations' own providers (portal/sso): an http:// issuer only outside production (a
        # provider on loopback for `make run` and the tests).
        "SSO_ALLOW_HTTP": _bool(env.get("SSO_ALLOW_HTTP"), portal_env != "production"),
        "SESSION_COOKIE_PATH": "/",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool(env.get("SESSION_COOKIE_SECURE"), production),
        "WTF_CSRF_TIME_LIMIT": None,  # tied to the session instead of a clock
        "SQLALCHEMY_RECORD_QUERIES": False,
        # Any larger request body is refused (413) before a form or CSRF check parses it.
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH") or 8 * 1024 * 1024),
    }
    cfg.update(overrides)
    # The __Host- prefix pins the cookie to this host and path, and browsers demand Secure for it.
    cfg.setdefault("SESSION_COOKIE_NAME", "__Host-portal" if cfg["SESSION_COOKIE_SECURE"] else "portal_session")

    if not cfg["SECRET_KEY"]:
        if production:
            raise ConfigError("SECRET_KEY must be set in production (e.g. python -c 'import secrets; print(secrets.token_hex(32))').")
        cfg["SECRET_KEY"] = _dev_secret_key(Path(cfg["INSTANCE_DIR"]))
    if production and not cfg["DATABASE_URL"]:
        raise ConfigError("DATABASE_URL must be set in production: the embedded database is for development only.")
    if production and not cfg["BASE_URL"]:
        raise ConfigError("BASE_URL must be set in production: emailed links are built from it, "
                          "never from the request's Host header.")
    cfg["BASE_URL"] = (cfg["BASE_URL"] or default_base_url(portal_env, env)).rstrip("/")
    try:
        cfg["INTEGRATIONS_ALLOW_PRIVATE"] = allow_private_setting(cfg["INTEGRATIONS_ALLOW_PRIVATE"],
                                                                  default=not production)
        from .dns import parse_nameservers  # config stands below the areas; dns imports nothing of ours
        parse_nameservers(cfg["DNS_NAMESERVERS"])
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if production and cfg["INTEGRATIONS_ALLOW_PRIVATE"] is True:
        raise ConfigError("INTEGRATIONS_ALLOW_PRIVATE=1 lets every tenant's integrations reach this network and is "
                          "refused in production; list the private destinations they may reach instead "
                          "(e.g. INTEGRATIONS_ALLOW_PRIVATE=10.1.2.3:8443,10.8.0.0/16).")
    if production and cfg["ALLOW_RLS_BYPASS"]:
        raise ConfigError("ALLOW_RLS_BYPASS is a development setting and is refused in production.")

    if not cfg["PORTAL_MASTER_KEYS"]:
        if production:
            raise ConfigError("PORTAL_MASTER_KEYS must be set in production (e.g. python -c \"import base64,os; "
                              "print(base64.urlsafe_b64encode(os.urandom(32)).decode())\"); see docs/security.md, Keys.")
        cfg["PORTAL_MASTER_KEYS"] = _dev_master_key(Path(cfg["INSTANCE_DIR"]))
    from .keys.cipher import MasterKeyError, parse_master_keys
    try:
        parse_master_keys(cfg["PORTAL_MASTER_KEYS"])
    except MasterKeyError as exc:
        raise ConfigError(str(exc)) from None

    for key in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "DATABASE_REPLICA_URL"):
        if cfg[key]:
            cfg[key] = _sqlalchemy_url(cfg[key])
    return cfg


def role_of(url: str) -> str:
    """The login role a database URL connects as."""
    return make_url(url).username or ""
