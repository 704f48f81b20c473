"""Sample data and the demo provider (issue 25): Acme has verified acme.com and a connection,
disabled, to an OpenID provider on loopback that `SSO_DEMO_PROVIDER=1 make run` (or `flask
sso-demo-provider`) starts with Acme's sample people and Keycloak-style groups.

The sample domain is marked verified without DNS (no record exists for acme.com): the worker's
daily re-check would flag it unless DNS_NAMESERVERS points at a server that has the record."""
from __future__ import annotations

import secrets
import uuid
from contextlib import contextmanager

from sqlalchemy import func, select

from ..accounts.models import User
from ..database.context import tenant_scope
from ..extensions import db
from ..tenants.models import Tenant
from .models import SsoConnection, SsoDomain, SsoGroupMapping
from .sealing import seal

DEMO_PORT = 8765
DEMO_ISSUER = f"http://127.0.0.1:{DEMO_PORT}"
DEMO_CLIENT_ID, DEMO_SECRET = "portal", "portal-demo-secret"
# The demo provider's people: Acme's sample accounts and one who is not a member yet (JIT).
DEMO_USERS = {"alice@acme.com": ["/acme/admins"], "bob@acme.com": ["/acme/technicians"],
              "tom@acme.com": ["/acme/technicians"], "nora@acme.com": ["/acme/technicians"]}


def load(slug: str = "acme-corp", domain: str = "acme.com") -> None:
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        return
    with tenant_scope(db.session, tenant.id, actor="sample:sso"):
        db.session.add(SsoDomain(tenant_id=tenant.id, domain=domain, token=secrets.token_urlsafe(24),
                                 verified_at=func.now(), checked_at=func.now()))
        connection = SsoConnection(tenant_id=tenant.id, id=uuid.uuid4(), name="Acme demo provider",
                                   issuer=DEMO_ISSUER, client_id=DEMO_CLIENT_ID, enabled=False,
                                   default_role="viewer")
        connection.client_secret = seal(DEMO_SECRET, tenant_id=tenant.id, row_id=connection.id)
        db.session.add(connection)
        db.session.flush()
        for group, role in (("/acme/technicians", "member"), ("/acme/admins", "admin")):
            db.session.add(SsoGroupMapping(tenant_id=tenant.id, connection_id=connection.id, group_name=group,
                                           role_key=role, external_id=f"demo-{group.rsplit('/', 1)[-1]}"))
        db.session.flush()


def demo_users():
    """The provider's people as oidc-provider-mock users (sub: a stable id, Keycloak-like)."""
    from oidc_provider_mock import User as MockUser
    names = dict(db.session.execute(select(User.email, User.name).where(User.email.in_(DEMO_USERS))).all())
    return [MockUser(sub=str(uuid.uuid5(uuid.NAMESPACE_URL, f"demo:{email}")),
                     claims={"email": email, "email_verified": True, "name": names.get(email) or email.split("@")[0],
                             "groups": groups})
            for email, groups in DEMO_USERS.items()]


@contextmanager
def demo_provider(port: int = DEMO_PORT):
    """The demo provider in a thread (development only): sign-in is one click on its page."""
    import oidc_provider_mock
    with oidc_provider_mock.run_server_in_thread(port=port, user_claims=demo_users()) as server:
        yield server
