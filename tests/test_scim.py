"""SCIM 2.0 provisioning, spoken to by the `scim2-client` package over HTTP (httpx2) against the
live server: discovery, the whole life of users and groups, filters, paging, PATCH semantics,
ETags, errors, isolation between organizations, the plan's user limit; and the settings section
that makes the tokens."""
from __future__ import annotations

import re

import httpx2
import pytest
import sqlalchemy as sa
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import (Context, EnterpriseUser, Error, Group, GroupMember, ListResponse, PatchOp, PatchOperation,
                          SCIMException, SearchRequest, User)

from browser_support import live_server  # noqa: F401 (the fixture)
from conftest import csrf_from, csrf_token, login
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.scim import services
from portal.scim.cli import SYSTEM
from portal.security.models import UserSession
from portal.tenancy import TenantContext
from portal.tenancy.models import Membership, MembershipStatus
from portal.tenants.models import Tenant

UserModel = User[EnterpriseUser]
SCIM_JSON = "application/scim+json"


def make_token(app, tenant_id) -> str:
    with app.app_context(), tenant_scope(db.session, tenant_id):
        tenant = db.session.get(Tenant, tenant_id)
        _, secret = services.create_token(TenantContext(tenant, None, SYSTEM), "test idp")
        db.session.commit()
    return secret


def raw(base: str, token: str) -> httpx2.Client:
    return httpx2.Client(base_url=f"{base}/scim/v2/", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def scim(base: str, token: str) -> SyncSCIMClient:
    client = SyncSCIMClient(raw(base, token))
    client.discover()
    return client


@pytest.fixture
def org(app, factory):
    owner = factory.user(name="Olive Owner")
    tenant = factory.tenant(members={"owner": owner})
    return {"tenant": tenant, "owner": owner, "token": make_token(app, tenant["id"])}


def new_user(name: str, **more) -> UserModel:
    return UserModel(user_name=name, name={"givenName": name.split("@")[0].title(), "familyName": "Tester"},
                     emails=[{"value": name, "primary": True, "type": "work"}], active=True, **more)


def test_discovery(live_server, org):
    client = scim(live_server, org["token"])
    assert client.service_provider_config.patch.supported
    assert client.service_provider_config.etag.supported
    assert {rt.id for rt in client.resource_types} == {"User", "Group"}
    response = raw(live_server, org["token"]).get("Schemas")
    assert response.headers["content-type"].startswith(SCIM_JSON)
    assert {s["id"] for s in response.json()["Resources"]} >= {"urn:ietf:params:scim:schemas:core:2.0:User",
                                                               "urn:ietf:params:scim:schemas:core:2.0:Group"}


def membership_of(app, tenant_id, email):
    with app.app_context(), tenant_scope(db.session, tenant_id):
        from portal.accounts.models import User as Account
        return db.session.execute(sa.select(Membership.status, Membership.role, Account.name).join(
            Account, Account.id == Membership.user_id).where(
            Membership.tenant_id == tenant_id, sa.func.lower(Account.email) == email.lower())).first()


def test_the_life_of_a_user(app, live_server, org, factory):
    client = scim(live_server, org["token"])
    tenant_id = org["tenant"]["id"]
    created = client.create(new_user("ada@example.com", external_id="okta-ada"))
    assert created.id and created.active is True and created.meta.version
    assert created.meta.location.endswith(f"/scim/v2/Users/{created.id}")
    status, role, name = membership_of(app, tenant_id, "ada@example.com")
    assert (status, role.value, name) == (MembershipStatus.ACTIVE, "viewer", "Ada Tester")

    read = client.query(UserModel, created.id)
    assert read.user_name == "ada@example.com" and read.external_id == "okta-ada"
    assert read.emails[0].value == "ada@example.com" and read.name.given_name == "Ada"

    # PUT replaces the whole: the name changes, the missing title goes away.
    read.title, read.name.given_name = None, "Augusta"
    replaced = client.replace(read)
    assert replaced.name.given_name == "Augusta" and replaced.meta.version != read.meta.version
    assert membership_of(app, tenant_id, "ada@example.com")[2] == "Augusta Tester"  # SCIM made the account

    # Deprovisioning by PATCH active=false: suspended at once, sessions ended, audited.
    person = membership_of(app, tenant_id, "ada@example.com")
    with app.app_context():
        from portal.accounts.models import User as Account
        account_id = db.session.scalar(sa.select(Account.id).where(Account.email == "ada@example.com"))
        db.session.execute(sa.insert(UserSession).values(user_id=account_id, token_hash=b"x" * 32,
                                                         expires_at=sa.func.now() + sa.text("interval '1 day'")))
        db.session.commit()
    patch = PatchOp[UserModel](operations=[PatchOperation[UserModel](op="replace", path="active", value=False)])
    client.modify(UserModel, created.id, patch)
    assert person is not None and membership_of(app, tenant_id, "ada@example.com")[0] == MembershipStatus.SUSPENDED
    assert client.query(UserModel, created.id).active is False
    with app.app_context():
        live = db.session.scalar(sa.select(sa.func.count()).select_from(UserSession).where(
            UserSession.user_id == account_id, UserSession.revoked_at.is_(None)))
        assert live == 0
    # Back again, then removed by DELETE: no membership, no resource; the account stays.
    client.modify(UserModel, created.id, PatchOp[UserModel](operations=[
        PatchOperation[UserModel](op="replace", value={"active": True})]))
    assert membership_of(app, tenant_id, "ada@example.com")[0] == MembershipStatus.ACTIVE
    client.delete(UserModel, created.id)
    assert membership_of(app, tenant_id, "ada@example.com") is None
    with pytest.raises(SCIMException) as gone:
        client.query(UserModel, created.id)
    assert gone.value.status == 404
    # The audit log tells it in words, naming the token.
    owner = app.test_client()
    login(owner, org["owner"].email)
    log = owner.get(f"/t/{org['tenant']['slug']}/audit/").get_data(as_text=True)
    for said in ("SCIM token ‘test idp’ provisioned ada@example.com", "suspended", "reactivated", "removed"):
        assert said in log, said
