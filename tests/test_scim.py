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
