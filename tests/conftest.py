"""Test harness: a real PostgreSQL (embedded, or TEST_DATABASE_URL), migrated as the
owner role and served as a separate login role with no RLS bypass, as in production."""
from __future__ import annotations

import fcntl
import os
import re
import secrets
import uuid
from pathlib import Path

import pytest
from flask_migrate import upgrade
from sqlalchemy import func

from portal import create_app
from portal import keys
from portal.accounts.models import User
from portal.accounts.passwords import hash_password
from portal.database import embedded
from portal.database.context import tenant_scope
from portal.database.provision import provision, url_for_role
from portal.devices.models import Device, DeviceStatus, DeviceType
from portal.extensions import db
from portal.tenancy.models import Membership, MembershipRole
from portal.seeding import load_sample
from portal.sites.models import Site
from portal.tenants.models import Tenant

# One Playwright per session for every browser test module.
pytest_plugins = ["browser_support", "dns_support"]
# Shard-ready queries (make test-shard-ready): every portal statement on a tenant table is parsed.
if os.environ.get("SHARD_CHECK") == "1":
    pytest_plugins.append("shard_ready")

ROOT = Path(__file__).resolve().parent.parent
# Per-run database: concurrent runs (two checkouts, a helper) never drop each other's data.
TEST_DB = f"portal_test_{os.getpid()}"
OWNER, APP_ROLE = "portal_test_owner", "portal_test_app"
PASSWORD = "correct horse battery staple"
SEED_PASSWORD = "portal-demo-2026"
# The keyring's master key of the test apps (PORTAL_MASTER_KEYS); tests of rotation add their own.
TEST_MASTER_KEY = "dGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmctLS0="


@pytest.fixture(scope="session")
def admin_url() -> str:
    """A superuser URL: TEST_DATABASE_URL, or the embedded server under instance/pgtest."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    # Under pytest-xdist every worker joins one embedded server: the first starts it, the
    # lock keeps two from initialising or starting it at once.
    lock = ROOT / "instance" / "pgtest.lock"
    lock.parent.mkdir(exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        server = embedded.start(ROOT / "instance" / "pgtest")
    return embedded.admin_url(server)


@pytest.fixture(scope="session")
def db_urls(admin_url):
    provision(admin_url, TEST_DB, OWNER, APP_ROLE, fresh=True)
    yield {"admin": admin_url, "owner": url_for_role(admin_url, OWNER, TEST_DB),
           "app": url_for_role(admin_url, APP_ROLE, TEST_DB)}
    drop_database(admin_url, TEST_DB)


def drop_database(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    from portal.database.provision import libpq_url
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def make_app(db_urls: dict, **overrides):
    config = {"PORTAL_ENV": "testing", "SECRET_KEY": "test-" + "x" * 32, "PORTAL_MASTER_KEYS": TEST_MASTER_KEY, "DATABASE_URL": db_urls["app"],
              "MIGRATION_DATABASE_URL": db_urls["owner"], "SEED_PASSWORD": SEED_PASSWORD,
              "SERVER_NAME": None,
              # Every test signs in from 127.0.0.1: the per-address limit is tested on its own app.
              "RATELIMIT_LOGIN": "10000 per minute"}
    config.update(overrides)
    return create_app(config)


@pytest.fixture(scope="session")
def app(db_urls):
    app = make_app(db_urls)
    with app.app_context():
        upgrade()
        load_sample(SEED_PASSWORD)
        db.session.commit()
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def password_hash() -> str:
    # One argon2id hash for every factory user keeps the suite fast.
    return hash_password(PASSWORD)


def without_csrf(html: str) -> str:
    """The page without its CSRF token (the same one in every form and in hx-headers): the token
    carries a timestamp, so two pages asked for in different seconds differ only there."""
    tokens = set(re.findall(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html))
    tokens |= set(re.findall(r'"X-CSRFToken": "([^"]+)"', html))
    for token in tokens:
        html = html.replace(token, "")
    return html


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client, email: str, password: str = PASSWORD):
    page = client.get("/login")
    token = csrf_from(page.get_data(as_text=True))
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert response.status_code == 303, f"login as {email} failed: {response.status_code}"
    return response


def csrf_token(client) -> str:
    """A valid token for this client's session (read from a page, as a browser would)."""
    return csrf_from(client.get("/tenants").get_data(as_text=True))


class Factory:
    """Builds committed rows with unique names; every test gets fresh tenants."""

    def __init__(self, app, password_hash):
        self.app, self.password_hash = app, password_hash

    def _unique(self) -> str:
        return secrets.token_hex(4)

    def user(self, **fields) -> User:
        with self.app.app_context():
            u = User(email=fields.pop("email", f"user-{self._unique()}@example.com"),
                     name=fields.pop("name", "Test User"), password_hash=self.password_hash,
                     email_verified_at=func.now(), **fields)
            db.session.add(u)
            db.session.commit()
            db.session.refresh(u)
            db.session.expunge(u)
            return u

    def tenant(self, *, members: dict | None = None, sites: int = 1, devices: int = 2, **fields) -> dict:
        """A tenant with `members` {role: User}, sites and devices; returns plain ids and slugs."""
        slug = fields.pop("slug", f"t-{self._unique()}")
        # Room to work in: tests of the plan limits set their own.
        fields.setdefault("plan", "enterprise")
        fields.setdefault("max_sites", 1000)
        fields.setdefault("max_devices", 100_000)
        fields.setdefault("max_integrations", 100)
        fields.setdefault("max_api_clients", 100)
        with self.app.app_context():
            t = Tenant(name=fields.pop("name", f"Tenant {slug}"), slug=slug, **fields)
            db.session.add(t)
            db.session.flush()
            info = {"id": t.id, "slug": slug, "sites": [], "devices": []}
            with tenant_scope(db.session, t.id, actor="test:setup"):
                keys.create_tenant_key(t.id)  # as the console's create_tenant does
                for role, user in (members or {}).items():
                    db.session.add(Membership(tenant_id=t.id, user_id=user.id, role=MembershipRole(role)))
                for i in range(sites):
                    site = Site(tenant_id=t.id, name=f"Site {i} {slug}", timezone="UTC")
                    db.session.add(site)
                    db.session.flush()
                    info["sites"].append(site.id)
                    for j in range(devices):
                        device = Device(tenant_id=t.id, site_id=site.id, name=f"Device {i}-{j} {slug}",
                                        type=DeviceType.SENSOR, serial_number=f"SN-{slug}-{i}-{j}",
                                        status=DeviceStatus.ONLINE)
                        db.session.add(device)
                        db.session.flush()
                        info["devices"].append(device.id)
                db.session.flush()  # inside the tenant scope: RLS checks rows as they are written
            db.session.commit()
            return info


@pytest.fixture
def factory(app, password_hash) -> Factory:
    return Factory(app, password_hash)


@pytest.fixture
def world(factory) -> dict:
    """Tenant A with one user per role, tenant B with its own owner, and an outsider."""
    users = {role: factory.user(name=f"{role} user") for role in ("owner", "admin", "member", "viewer")}
    outsider = factory.user(name="outsider")
    b_owner = factory.user(name="b owner")
    a = factory.tenant(members=users)
    b = factory.tenant(members={"owner": b_owner})
    return {"a": a, "b": b, "users": users, "outsider": outsider, "b_owner": b_owner}


def new_id() -> uuid.UUID:
    return uuid.uuid4()
