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
from scim2_models import (EnterpriseUser, Group, GroupMember, PatchOp, PatchOperation, SCIMException, SearchRequest,
                          User)

from conftest import csrf_from, csrf_token, login
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.scim import services
from portal.scim.cli import SYSTEM
from portal.tenancy import TenantContext
from portal.tenancy.models import Membership, MembershipStatus
from portal.tenants.models import Tenant

UserModel = User[EnterpriseUser]
SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


def make_token(app, tenant_id) -> str:
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
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
    assert client.provider.config.patch.supported and client.provider.config.etag.supported
    assert {rt.id for rt in client.provider.resource_types} == {"User", "Group"}
    response = raw(live_server, org["token"]).get("Schemas")
    assert response.headers["content-type"].startswith(SCIM_JSON)
    assert {s["id"] for s in response.json()["Resources"]} >= {"urn:ietf:params:scim:schemas:core:2.0:User",
                                                               "urn:ietf:params:scim:schemas:core:2.0:Group"}


def membership_of(app, tenant_id, email):
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
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

    # Deprovisioning by PATCH active=false: suspended at once, audited.
    patch = PatchOp[UserModel](operations=[PatchOperation[UserModel](op="replace", path="active", value=False)])
    client.modify(UserModel, created.id, patch)
    assert membership_of(app, tenant_id, "ada@example.com")[0] == MembershipStatus.SUSPENDED
    assert client.query(UserModel, created.id).active is False
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


def test_filters_and_paging(live_server, org):
    client = scim(live_server, org["token"])
    made = [client.create(new_user(f"person{i}@{'acme' if i % 2 else 'example'}.com", external_id=f"ext-{i}"))
            for i in range(5)]
    client.modify(UserModel, made[4].id, PatchOp[UserModel](operations=[
        PatchOperation[UserModel](op="replace", path="active", value=False)]))

    def names(filter_=None, **more) -> list[str]:
        found = client.query(UserModel, query_parameters=SearchRequest[UserModel](filter=filter_, **more))
        return [u.user_name for u in found.resources or []]

    assert names('userName eq "PERSON1@acme.com"') == ["person1@acme.com"]  # userName is not case-exact
    assert names('emails.value co "@acme"') == ["person1@acme.com", "person3@acme.com"]
    assert names('emails[value co "example"]') == ["person0@example.com", "person2@example.com",
                                                   "person4@example.com"]
    assert names("active eq false") == ["person4@example.com"]
    assert names('externalId eq "ext-2"') == ["person2@example.com"]
    assert names('externalId eq "EXT-2"') == []  # externalId is case-exact
    assert names('userName sw "person" and not (active eq true)') == ["person4@example.com"]
    assert names('userName eq "person0@example.com" or userName eq "person3@acme.com"') == \
        ["person0@example.com", "person3@acme.com"]
    # Pages by index: three pages of two, in creation order, with the total each time.
    http = raw(live_server, org["token"])
    seen = []
    for start in (1, 3, 5):
        page = http.get("Users", params={"startIndex": start, "count": 2}).json()
        assert page["totalResults"] == 5 and page["startIndex"] == start
        seen += [u["userName"] for u in page["Resources"]]
    assert seen == [f"person{i}@{'acme' if i % 2 else 'example'}.com" for i in range(5)]
    assert http.get("Users", params={"count": 0}).json() == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 5, "startIndex": 1,
        "itemsPerPage": 0, "Resources": []}
    only = http.get("Users", params={"filter": 'userName eq "person0@example.com"', "attributes": "userName"}).json()
    assert set(only["Resources"][0]) == {"schemas", "id", "userName"}


def test_patch_semantics_and_versions(live_server, org):
    client = scim(live_server, org["token"])
    http = raw(live_server, org["token"])
    user = client.create(new_user("grace@example.com"))
    url = f"Users/{user.id}"

    def patch(*operations, **headers):
        return http.patch(url, headers={"Content-Type": SCIM_JSON, **headers}, json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(operations)})

    # add to a multi-valued attribute, replace a sub-attribute, remove by a value filter
    got = patch({"op": "add", "path": "emails", "value": [{"value": "grace@navy.example.com", "type": "home"}]},
                {"op": "replace", "path": "name.familyName", "value": "Hopper"})
    assert got.status_code == 200, got.text
    body = got.json()
    assert {e["value"] for e in body["emails"]} == {"grace@example.com", "grace@navy.example.com"}
    assert body["name"]["familyName"] == "Hopper" and got.headers["ETag"] == body["meta"]["version"]
    got = patch({"op": "remove", "path": 'emails[type eq "home"]'})
    assert [e["value"] for e in got.json()["emails"]] == ["grace@example.com"]
    # Entra ID's way: capitalised op, "False" as a string, no path
    got = patch({"op": "Replace", "value": {"active": "False"}})
    assert got.status_code == 200 and got.json()["active"] is False, got.text
    # ETags: a stale If-Match is refused, the current one accepted; If-None-Match gives 304
    etag = got.headers["ETag"]
    assert patch({"op": "replace", "path": "title", "value": "RAdm"}, **{"If-Match": 'W/"1"'}).status_code == 412
    assert patch({"op": "replace", "path": "title", "value": "RAdm"}, **{"If-Match": etag}).status_code == 200
    fresh = http.get(url)
    assert http.get(url, headers={"If-None-Match": fresh.headers["ETag"]}).status_code == 304
    # read-only attributes and unknown paths are SCIM errors, nothing changes
    assert patch({"op": "replace", "path": "id", "value": "x"}).status_code == 400
    assert patch({"op": "replace", "path": "shoeSize", "value": 9}).status_code == 400
    assert http.get(url).json()["title"] == "RAdm"


def scim_error(response, status: int, scim_type: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and body["status"] == str(status)
    assert body.get("scimType") == scim_type and body["detail"]
    return body


def test_errors_are_scim_errors(live_server, org):
    http = raw(live_server, org["token"])
    client = scim(live_server, org["token"])
    client.create(new_user("linus@example.com"))
    post = lambda body: http.post("Users", json=body, headers={"Content-Type": SCIM_JSON})  # noqa: E731
    scim_error(post({"schemas": [USER_SCHEMA], "userName": "LINUS@example.com"}),
               409, "uniqueness")
    scim_error(post({"userName": "no-email-here"}), 400, "invalidValue")
    scim_error(post({"emails": [{"value": "x@example.com"}]}), 400, "invalidValue")
    scim_error(post({"userName": "long@example.com", "emails": [{"value": "x" * 400 + "@example.com"}]}), 400,
               "invalidValue")
    scim_error(http.post("Users", content=b" " * (1024 * 1024 + 1), headers={"Content-Type": SCIM_JSON}), 413)
    scim_error(http.post("Users", content=b"{not json", headers={"Content-Type": SCIM_JSON}), 400, "invalidSyntax")
    scim_error(http.get("Users", params={"filter": 'userName eq'}), 400, "invalidFilter")
    scim_error(http.get("Users", params={"filter": 'title eq "x"'}), 400, "invalidFilter")  # not filterable here
    scim_error(http.get("Users/not-an-id"), 404)
    scim_error(http.get("Nothing"), 404)
    scim_error(http.delete("ServiceProviderConfig"), 405)
    no_token = httpx2.Client(base_url=f"{live_server}/scim/v2/")
    refused = no_token.get("Users")
    scim_error(refused, 401)
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    scim_error(raw(live_server, "pst_" + "x" * 43).get("Users"), 401)


def test_a_token_reaches_only_its_organization(app, live_server, org, factory):
    other_owner = factory.user(name="Bea Owner")
    other = factory.tenant(members={"owner": other_owner})
    mine, theirs = scim(live_server, org["token"]), scim(live_server, make_token(app, other["id"]))
    ada = mine.create(new_user("ada@example.com"))
    group = mine.create(Group(display_name="Technicians", members=[GroupMember(value=ada.id)]))
    # The same person provisioned by both: two resources, two ids, one account.
    bea_ada = theirs.create(new_user("ada@example.com"))
    assert bea_ada.id != ada.id
    http = raw(live_server, make_token(app, other["id"]))
    for path in (f"Users/{ada.id}", f"Groups/{group.id}"):
        scim_error(http.get(path), 404)
        scim_error(http.delete(path), 404)
        scim_error(http.patch(path, json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                          "Operations": [{"op": "replace", "path": "active", "value": False}]},
                              headers={"Content-Type": SCIM_JSON}), 404)
    assert [u.id for u in theirs.query(UserModel).resources] == [bea_ada.id]
    assert theirs.query(Group).total_results == 0
    # Another organization's user cannot be put into one's group.
    scim_error(http.post("Groups", json={"displayName": "Spies", "members": [{"value": ada.id}]},
                         headers={"Content-Type": SCIM_JSON}), 400, "invalidValue")
    # Deprovisioned by one organization: still a member of the other.
    theirs.delete(UserModel, bea_ada.id)
    assert membership_of(app, org["tenant"]["id"], "ada@example.com")[0] == MembershipStatus.ACTIVE
    assert mine.query(UserModel, ada.id).active is True


def test_the_plan_limits_provisioning(app, live_server, factory):
    owner = factory.user(name="Pat Owner")
    tenant = factory.tenant(members={"owner": owner}, max_users=2)
    client, http = scim(live_server, make_token(app, tenant["id"])), raw(live_server, make_token(app, tenant["id"]))
    first = client.create(new_user("one@example.com"))
    refused = scim_error(http.post("Users", json={"userName": "two@example.com", "active": True},
                                   headers={"Content-Type": SCIM_JSON}), 403)
    assert "plan allows 2 users and 0 are free" in refused["detail"]
    assert membership_of(app, tenant["id"], "two@example.com") is None
    # Suspended people keep their seat; a removed one frees it.
    client.delete(UserModel, first.id)
    assert client.create(new_user("two@example.com")).user_name == "two@example.com"


def test_owners_are_out_of_reach_and_members_are_linked(app, live_server, org, factory):
    """An invited member already in the organization is taken over, not duplicated; an owner's
    membership can be described but not suspended or removed by a token."""
    client, http = scim(live_server, org["token"]), raw(live_server, org["token"])
    owner = client.create(new_user(org["owner"].email))
    assert owner.active is True
    assert membership_of(app, org["tenant"]["id"], org["owner"].email)[1].value == "owner"  # taken over as it is
    got = scim_error(http.patch(f"Users/{owner.id}", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}]}, headers={"Content-Type": SCIM_JSON}),
        400, "mutability")
    assert "owner" in got["detail"]
    scim_error(http.delete(f"Users/{owner.id}"), 400, "mutability")
    assert membership_of(app, org["tenant"]["id"], org["owner"].email)[0] == MembershipStatus.ACTIVE
    # PUT does not rename an account SCIM did not make (it may belong to other organizations).
    owner.name.given_name = "Someone"
    client.replace(owner)
    assert membership_of(app, org["tenant"]["id"], org["owner"].email)[2] == "Olive Owner"


def test_the_group_life(app, live_server, org):
    client, http = scim(live_server, org["token"]), raw(live_server, org["token"])
    ada, bob = client.create(new_user("ada@example.com")), client.create(new_user("bob@example.com"))
    group = client.create(Group(display_name="Technicians", external_id="g-1", members=[GroupMember(value=ada.id)]))
    assert [m.value for m in group.members] == [ada.id]
    assert [g.display for g in client.query(UserModel, ada.id).groups] == ["Technicians"]
    patch = lambda *ops: http.patch(f"Groups/{group.id}", headers={"Content-Type": SCIM_JSON}, json={  # noqa: E731
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(ops)})
    got = patch({"op": "add", "path": "members", "value": [{"value": bob.id}]})
    assert got.status_code == 200, got.text
    assert {m["value"] for m in got.json()["members"]} == {ada.id, bob.id}
    got = patch({"op": "remove", "path": f'members[value eq "{ada.id}"]'},
                {"op": "replace", "path": "displayName", "value": "Field technicians"})
    assert [m["value"] for m in got.json()["members"]] == [bob.id]
    assert got.json()["displayName"] == "Field technicians"
    found = client.query(Group, query_parameters=SearchRequest[Group](filter='displayName eq "field technicians"'))
    assert [g.id for g in found.resources] == [group.id]
    found = client.query(Group, query_parameters=SearchRequest[Group](filter=f'members.value eq "{bob.id}"'))
    assert [g.id for g in found.resources] == [group.id]
    scim_error(http.post("Groups", json={"displayName": "FIELD TECHNICIANS"}, headers={"Content-Type": SCIM_JSON}),
               409, "uniqueness")
    # A member removed from the organization leaves its groups.
    client.delete(UserModel, bob.id)
    assert client.query(Group, group.id).members is None
    client.delete(Group, group.id)
    scim_error(http.get(f"Groups/{group.id}"), 404)
    assert client.query(UserModel, ada.id).groups is None
    owner = app.test_client()
    login(owner, org["owner"].email)
    log = owner.get(f"/t/{org['tenant']['slug']}/audit/").get_data(as_text=True)
    assert "created group ‘Technicians’ with 1 member" in log
    assert "changed group ‘Field technicians’ (renamed it from ‘Technicians’; removed ada@example.com)" in log
    assert "deleted group ‘Field technicians’" in log


def test_the_provisioning_section(app, live_server, org):
    """Owners create a token (shown once), rotate it (the old one stops at once) and revoke it."""
    slug = org["tenant"]["slug"]
    owner = app.test_client()
    login(owner, org["owner"].email)
    page = owner.get(f"/t/{slug}/settings/provisioning")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "No SCIM tokens yet" not in html and "/scim/v2" in html
    assert re.search(r'id="scim-counts">0 people,\s+0 groups<', html)
    assert 'href="/t/%s/settings/provisioning" aria-current="page"' % slug in html
    assert owner.post(f"/t/{slug}/settings/provisioning/tokens", data={"csrf_token": csrf_from(html), "name": ""}
                      ).status_code == 422
    made = owner.post(f"/t/{slug}/settings/provisioning/tokens", data={"csrf_token": csrf_from(html), "name": "Okta"})
    assert made.status_code == 303 and made.headers["Location"].endswith(f"/t/{slug}/settings/provisioning")
    shown = owner.get(made.headers["Location"]).get_data(as_text=True)
    secret = re.search(r'id="scim-token" class="input mono" readonly value="(pst_[^"]+)"', shown)[1]
    assert secret not in owner.get(f"/t/{slug}/settings/provisioning").get_data(as_text=True)  # once
    assert raw(live_server, secret).get("Users").status_code == 200
    token_id = re.search(r'/settings/provisioning/tokens/([0-9a-f-]{36})/rotate', shown)[1]
    rotated = owner.post(f"/t/{slug}/settings/provisioning/tokens/{token_id}/rotate",
                         data={"csrf_token": csrf_token(owner)})
    new = re.search(r'value="(pst_[^"]+)"', owner.get(rotated.headers["Location"]).get_data(as_text=True))[1]
    assert raw(live_server, secret).get("Users").status_code == 401
    assert raw(live_server, new).get("Users").status_code == 200
    revoked = owner.post(f"/t/{slug}/settings/provisioning/tokens/{token_id}/revoke",
                         data={"csrf_token": csrf_token(owner)})
    assert revoked.status_code == 303
    assert raw(live_server, new).get("Users").status_code == 401
    log = owner.get(f"/t/{slug}/audit/").get_data(as_text=True)
    for said in ("created SCIM token ‘Okta’", "rotated SCIM token ‘Okta’", "revoked SCIM token ‘Okta’"):
        assert said in log


def test_the_command_prints_a_token_once(app, live_server, org):
    result = app.test_cli_runner().invoke(args=["scim-tokens", "create", "--tenant",
                                                                org["tenant"]["slug"], "--name", "Automation"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("pst_") and "shown once" in result.stderr
    assert raw(live_server, token).get("ServiceProviderConfig").status_code == 200
    refused = app.test_cli_runner().invoke(args=["scim-tokens", "create", "--tenant", "no-such"])
    assert refused.exit_code != 0 and "No organization" in refused.stderr


def test_roles_and_sites_follow_the_groups(app, live_server, org):
    """Group mappings (portal/sso/groups.py) turn SCIM groups into roles and sites: joining a mapped
    group raises the role, leaving it drops back to what provisioning gives, the sites follow."""
    from portal.sites.models import SiteAssignment
    from portal.sso.models import SsoConnection, SsoGroupMapping
    from test_role_sets import further_of
    from test_roles import make_role
    tenant_id, site = org["tenant"]["id"], org["tenant"]["sites"][0]
    keeper = make_role(app, tenant_id, "Status keeper", ["tenant:view", "devices:status"])
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        connection = SsoConnection(tenant_id=tenant_id, name="Okta", issuer="https://idp.example.com",
                                   client_id="portal")
        db.session.add(connection)
        db.session.flush()
        db.session.add_all([
            SsoGroupMapping(tenant_id=tenant_id, connection_id=connection.id, group_name="/Admins", role_key="admin"),
            SsoGroupMapping(tenant_id=tenant_id, connection_id=connection.id, group_name="/Technicians",
                            role_key="member", site_ids=[site]),
            SsoGroupMapping(tenant_id=tenant_id, connection_id=connection.id, group_name="/Owners", role_key="owner"),
            SsoGroupMapping(tenant_id=tenant_id, connection_id=connection.id, group_name="/Keepers", role_key=keeper)])
        db.session.commit()

    def role_and_sites(email):
        status, role, _ = membership_of(app, tenant_id, email)
        with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
            from portal.accounts.models import User as Account
            sites = db.session.scalars(sa.select(SiteAssignment.site_id).join(
                Account, Account.id == SiteAssignment.user_id).where(Account.email == email)).all()
        return role.value, sites

    client, http = scim(live_server, org["token"]), raw(live_server, org["token"])
    ada = client.create(new_user("ada@example.com"))
    techs = client.create(Group(display_name="Technicians", members=[GroupMember(value=ada.id)]))
    assert role_and_sites("ada@example.com") == ("member", [site])
    admins = client.create(Group(display_name="Admins"))
    def patch(group, *ops):
        return http.patch(f"Groups/{group.id}", headers={"Content-Type": SCIM_JSON}, json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(ops)})
    assert patch(admins, {"op": "add", "path": "members", "value": [{"value": ada.id}]}).status_code == 200
    assert role_and_sites("ada@example.com") == ("admin", [site])  # the strongest role, the union of sites
    # Owner by mapping is off unless an owner turned it on: the Owners group gives nothing more.
    owners = client.create(Group(display_name="Owners", members=[GroupMember(value=ada.id)]))
    assert role_and_sites("ada@example.com")[0] == "admin"
    client.delete(Group, owners.id)
    # A group mapped to a custom role adds it besides the base role (role sets), and takes it back.
    with app.app_context():
        ada_id = db.session.scalar(sa.text("SELECT id FROM users WHERE email = 'ada@example.com'"))
    keepers = client.create(Group(display_name="Keepers", members=[GroupMember(value=ada.id)]))
    assert role_and_sites("ada@example.com")[0] == "admin" and further_of(app, tenant_id, ada_id) == {keeper}
    client.delete(Group, keepers.id)
    assert further_of(app, tenant_id, ada_id) == set()
    keepers = client.create(Group(display_name="Keepers", members=[GroupMember(value=ada.id)]))
    assert patch(admins, {"op": "remove", "path": f'members[value eq "{ada.id}"]'}).status_code == 200
    assert role_and_sites("ada@example.com")[0] == "member" and further_of(app, tenant_id, ada_id) == {keeper}
    client.delete(Group, keepers.id)
    assert further_of(app, tenant_id, ada_id) == set()
    assert patch(techs, {"op": "remove", "path": "members"}).status_code == 200
    # No mapped group left: what provisioning gives, without the sites the groups gave.
    assert role_and_sites("ada@example.com") == ("viewer", [])
    assert further_of(app, tenant_id, ada_id) == set()
    owner = app.test_client()
    login(owner, org["owner"].email)
    log = owner.get(f"/t/{org['tenant']['slug']}/audit/").get_data(as_text=True)
    assert "changed the role of" in log and "SCIM token ‘test idp’" in log


def test_concurrent_provisioning_never_passes_the_plan(app, live_server, factory):
    """Seats are counted under the tenant lock: of six people provisioned at once with two seats
    free, exactly two get in, and nobody gets a 5xx."""
    from concurrent.futures import ThreadPoolExecutor
    owner = factory.user(name="Con Owner")
    tenant = factory.tenant(members={"owner": owner}, max_users=3)
    token = make_token(app, tenant["id"])

    def provision(i):
        with raw(live_server, token) as http:
            return http.post("Users", json={"userName": f"rush{i}@example.com"},
                             headers={"Content-Type": SCIM_JSON}).status_code
    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(provision, range(6)))
    assert codes == [201, 201, 403, 403, 403, 403]
    with app.app_context(), tenant_scope(db.session, tenant["id"], actor="test:setup"):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Membership).where(
            Membership.tenant_id == tenant["id"])) == 3


def test_deprovisioning_ends_access_at_once(app, live_server, org, factory):
    """A signed-in member deactivated at the provider cannot take one more step in the
    organization, with the session they already have; removed, the same."""
    slug = org["tenant"]["slug"]
    ned = factory.user(name="Ned Member")
    with app.app_context(), tenant_scope(db.session, org["tenant"]["id"], actor="test:setup"):
        db.session.add(Membership(tenant_id=org["tenant"]["id"], user_id=ned.id, role="member"))
        db.session.commit()
    browser = app.test_client()
    login(browser, ned.email)
    assert browser.get(f"/t/{slug}/").status_code == 200
    client = scim(live_server, org["token"])
    linked = client.create(new_user(ned.email))  # an existing member, taken over
    client.modify(UserModel, linked.id, PatchOp[UserModel](operations=[
        PatchOperation[UserModel](op="replace", path="active", value=False)]))
    assert browser.get(f"/t/{slug}/devices/").status_code in (302, 404)  # signed out, or shut out
    client.modify(UserModel, linked.id, PatchOp[UserModel](operations=[
        PatchOperation[UserModel](op="replace", path="active", value=True)]))
    browser = app.test_client()  # the old session may live on (sessions are not per organization)
    login(browser, ned.email)
    assert browser.get(f"/t/{slug}/").status_code == 200
    client.delete(UserModel, linked.id)
    assert browser.get(f"/t/{slug}/devices/").status_code in (302, 404)
