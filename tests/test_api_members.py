"""/api/v1/roles and /api/v1/members (issue 26): role sets for machines, through the members
page's services and rules; an API client and an app acting for a person both."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from test_api import EVERYTHING, bearer, token_for
from test_role_sets import further_of
from test_roles import make_role

from portal.api import credentials, grants
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.tenancy import Permission, TenantContext, roles
from portal.tenancy.models import Membership
from portal.tenants.models import Tenant

READ = ["tenant:view", "sites:view", "devices:view", "members:view", "tasks:view"]  # a viewer's


@pytest.fixture
def team(app, client, factory):
    users = {r: factory.user(name=f"{r.title()} Person") for r in ("owner", "admin", "member", "viewer")}
    t = factory.tenant(members=users, sites=2, devices=1)
    made = {"status": make_role(app, t["id"], "Status keeper", ["tenant:view", "devices:status"]),
            "sites": make_role(app, t["id"], "Site planner", ["tenant:view", "sites:view", "sites:write"])}
    return {"t": t, "users": users, "roles": made, "http": client,
            "token": bearer(token_for(app, client, t["id"], EVERYTHING))}


def audit_of(app, tenant_id, user_id):
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        return db.session.execute(sa.text(
            "SELECT user_id, before, after, details FROM audit_logs WHERE tenant_id = :t "
            "AND action = 'member.role_change' AND resource_id = :r ORDER BY seq"),
            {"t": tenant_id, "r": str(user_id)}).all()


def patch(http, headers, user_id, keys, etag=None):
    url = f"/api/v1/members/{user_id}"
    etag = etag or http.get(url, headers=headers).headers["ETag"]
    return http.patch(url, json={"roles": keys}, headers={**headers, "If-Match": etag})


def test_carol_is_listed_and_read_as_viewer_and_field_technician(app, client):
    with app.app_context():
        acme, carol = db.session.execute(sa.text(
            "SELECT t.id, u.id FROM tenants t, users u WHERE t.slug = 'acme-corp' AND u.email = 'carol@acme.com'")).one()
    with app.app_context(), tenant_scope(db.session, acme, actor="test:setup"):
        warehouse = db.session.scalar(sa.text("SELECT id FROM sites WHERE name = 'Acme Warehouse'"))
    headers = bearer(token_for(app, client, acme, ["members:view"]))
    found, url = [], "/api/v1/members"
    while url:
        page = client.get(url, headers=headers)
        assert page.status_code == 200, page.get_data(as_text=True)
        found += page.get_json()["items"]
        url = page.get_json()["next"]
    emails = [m["email"] for m in found]
    assert emails == sorted(emails) and "alice@acme.com" in emails
    listed = next(m for m in found if m["email"] == "carol@acme.com")
    technician = next(r for r in client.get("/api/v1/roles", headers=headers).get_json()["items"]
                      if r["name"] == "Field technician")
    assert technician == {"key": technician["key"], "name": "Field technician", "kind": "custom",
                          "description": "Works on the devices at their sites: sees them and changes their status",
                          "permissions": ["devices:status", "devices:view", "sites:view", "tenant:view"]}
    assert listed["roles"] == [{"key": "viewer", "name": "Viewer"},
                               {"key": technician["key"], "name": "Field technician"}]
    assert listed["role"] == "viewer" and listed["status"] == "active"
    assert listed["permissions"] == sorted(set(READ) | {"devices:status"})
    assert listed["all_sites"] is False and listed["site_ids"] == [str(warehouse)]
    read = client.get(f"/api/v1/members/{carol}", headers=headers)
    assert read.status_code == 200 and read.get_json() == listed and read.headers["ETag"]
    # A second page starts after the first (the cursor is the email), and a query narrows.
    assert [m["email"] for m in client.get("/api/v1/members?q=CAROL", headers=headers).get_json()["items"]] \
        == ["carol@acme.com"]


def test_roles_lists_built_in_roles_first_then_the_organization_s_own(team):
    items = team["http"].get("/api/v1/roles", headers=team["token"]).get_json()["items"]
    assert [(r["key"], r["kind"]) for r in items[:4]] == [("owner", "system"), ("admin", "system"),
                                                          ("member", "system"), ("viewer", "system")]
    assert [(r["name"], r["key"]) for r in items[4:]] == [("Site planner", team["roles"]["sites"]),
                                                         ("Status keeper", team["roles"]["status"])]
    assert items[3]["permissions"] == sorted(READ)


def test_a_client_gives_and_takes_further_roles_and_the_audit_log_names_it(app, team):
    http, headers, t, viewer = team["http"], team["token"], team["t"], team["users"]["viewer"]
    status, sites = team["roles"]["status"], team["roles"]["sites"]
    url = f"/api/v1/members/{viewer.id}"
    first = http.get(url, headers=headers)
    assert http.patch(url, json={"roles": ["viewer"]}, headers=headers).status_code == 428
    given = patch(http, headers, viewer.id, ["viewer", status.upper(), sites], first.headers["ETag"])
    assert given.status_code == 200, given.get_data(as_text=True)
    body = given.get_json()
    assert body["role"] == "viewer"
    assert body["roles"] == [{"key": "viewer", "name": "Viewer"}, {"key": sites, "name": "Site planner"},
                             {"key": status, "name": "Status keeper"}]
    assert {"devices:status", "sites:write"} <= set(body["permissions"])
    assert further_of(app, t["id"], viewer.id) == {status, sites}
    assert http.get(url, headers=headers).headers["ETag"] == given.headers["ETag"] != first.headers["ETag"]
    # The version read before the change is stale now.
    assert patch(http, headers, viewer.id, ["viewer"], first.headers["ETag"]).status_code == 412
    taken = patch(http, headers, viewer.id, ["viewer", sites])
    assert taken.status_code == 200 and [r["name"] for r in taken.get_json()["roles"]] == ["Viewer", "Site planner"]
    assert further_of(app, t["id"], viewer.id) == {sites}
    rows = audit_of(app, t["id"], viewer.id)
    assert len(rows) == 2
    assert all(r.user_id is None and r.details["actor"] == {**r.details["actor"], "type": "api_client",
                                                              "name": "test client"} for r in rows)
    assert rows[0].after["further_roles"] == ["Site planner", "Status keeper"] and "further_roles" not in rows[0].before
    assert rows[1].before["further_roles"] == ["Site planner", "Status keeper"]
    assert rows[1].after["further_roles"] == ["Site planner"]
    # A custom base role: the first listed when no built-in one is; the one it was held besides
    # is not also held as a further role (back to Viewer, it does not come back).
    custom = patch(http, headers, viewer.id, [sites])
    assert custom.status_code == 200
    assert custom.get_json()["role"] == sites and custom.get_json()["roles"] == [{"key": sites, "name": "Site planner"}]
    assert further_of(app, t["id"], viewer.id) == set()
    back = patch(http, headers, viewer.id, ["viewer"]).get_json()
    assert back["roles"] == [{"key": "viewer", "name": "Viewer"}] and back["permissions"] == sorted(READ)
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        m = db.session.scalar(sa.select(Membership).where(Membership.tenant_id == t["id"],
                                                          Membership.user_id == viewer.id))
        assert roles.role_of(m).name == "Viewer"


def test_what_the_rules_refuse(app, team):
    http, t, users = team["http"], team["t"], team["users"]
    status, sites = team["roles"]["status"], team["roles"]["sites"]
    # A client that holds what a viewer and the status keeper hold, and may manage members.
    narrow = bearer(token_for(app, http, t["id"], READ + ["devices:status", "members:manage"]))
    viewer = users["viewer"].id
    before = http.get(f"/api/v1/members/{viewer}", headers=narrow).get_json()

    def refused(headers, user_id, keys, status_code, fields):
        r = patch(http, headers, user_id, keys)
        assert r.status_code == status_code, (keys, r.status_code, r.get_data(as_text=True))
        assert r.mimetype == "application/problem+json"
        assert [e["field"] for e in r.get_json().get("errors", [])] == fields, r.get_json()
        return r.get_json()

    assert "more than your own role" in refused(narrow, viewer, ["viewer", sites], 422, ["roles"])["detail"]
    refused(narrow, viewer, ["admin"], 422, ["roles"])
    assert "owner" in refused(narrow, viewer, ["owner"], 422, ["roles"])["detail"]
    refused(narrow, viewer, ["viewer", "member"], 422, ["roles"])
    refused(narrow, viewer, ["viewer", "nobody", str(uuid.uuid4())], 422, ["roles.1", "roles.2"])
    refused(narrow, viewer, [status, "viewer", status], 422, ["roles.2"])
    refused(narrow, viewer, [], 422, ["roles"])
    refused(narrow, viewer, ["viewer", 7], 422, ["roles.1"])
    # Whom a client may change: strictly less than it holds; never an owner, even with every scope.
    refused(narrow, users["member"].id, ["viewer"], 409, [])
    assert refused(team["token"], users["owner"].id, ["admin"], 409, [])["detail"] == "Only an owner can change an owner."
    assert http.get(f"/api/v1/members/{viewer}", headers=narrow).get_json() == before
    assert audit_of(app, t["id"], viewer) == []
    # What it holds, it gives.
    assert patch(http, narrow, viewer, ["viewer", status]).status_code == 200


def test_scopes_and_other_organizations(app, team, factory):
    http, t = team["http"], team["t"]
    viewer = team["users"]["viewer"].id
    reader = bearer(token_for(app, http, t["id"], ["members:view"]))
    denied = http.patch(f"/api/v1/members/{viewer}", json={"roles": ["viewer"]},
                        headers={**reader, "If-Match": "*"})
    assert denied.status_code == 403 and "members:manage" in denied.get_json()["detail"]
    assert http.get("/api/v1/members", headers=bearer(token_for(app, http, t["id"], ["devices:view"]))).status_code == 403
    other = factory.user(name="Elsewhere")
    factory.tenant(members={"owner": other})
    for method in ("GET", "PATCH"):
        r = http.open(f"/api/v1/members/{other.id}", method=method, json={"roles": ["viewer"]},
                      headers={**team["token"], "If-Match": "*"})
        assert r.status_code == 404, (method, r.status_code)
    assert other.email not in {m["email"] for m in http.get("/api/v1/members", headers=reader).get_json()["items"]}
    for url in ("/api/v1/members?cursor=__4", "/api/v1/members?limit=5", "/api/v1/roles?cursor="):
        assert http.get(url, headers=reader).status_code == 422, url


def person_token(app, tenant_id, user_id, scopes, name="Team App") -> str:
    """An app's access token for a person, as the code flow would leave it (tests/test_oauth_apps.py
    drives the flow itself)."""
    token = credentials.new_token()
    with app.test_request_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        tenant = db.session.get(Tenant, tenant_id)
        everything = roles.Role("test", "Test", "", frozenset(Permission))
        client, _ = grants.create_app(TenantContext(tenant, None, everything),
                                      grants.AppData(name, ["https://app.example.com/cb"], True, scopes))
        member = db.session.scalar(sa.select(Membership).where(Membership.tenant_id == tenant_id,
                                                               Membership.user_id == user_id))
        grant = grants.consent(TenantContext(tenant, member, roles.role_of(member)), client.id, client.name, scopes)
        grants.issue(tenant_id, client.id, grant.id, token, scopes, 3600, None, [])
        db.session.commit()
    return token


def test_an_app_acting_for_an_admin_changes_roles_as_the_admin(app, team):
    http, t, users = team["http"], team["t"], team["users"]
    viewer, status = users["viewer"].id, team["roles"]["status"]
    headers = bearer(person_token(app, t["id"], users["admin"].id, EVERYTHING))
    r = patch(http, headers, viewer, ["viewer", status])
    assert r.status_code == 200, r.get_data(as_text=True)
    row = audit_of(app, t["id"], viewer)[-1]
    assert str(row.user_id) == str(users["admin"].id) and row.details["via"]["name"] == "Team App"
    # The admin's own rules: another admin, or themselves, is not theirs to change.
    assert patch(http, headers, users["admin"].id, ["viewer"]).status_code == 409
    # Capped by what the token carries: without members:manage, no change.
    weak = bearer(person_token(app, t["id"], users["member"].id, ["members:view", "members:manage"], "Other App"))
    assert patch(http, weak, viewer, ["viewer"]).status_code == 403  # a member's role lacks members:manage


def test_an_app_acting_for_an_owner_with_a_few_scopes_cannot_grant_ownership(app, team):
    """An owner's standing goes with every permission, not with the person: an app allowed only
    the members scopes acts as what those allow (it cannot make owners nor change an owner)."""
    http, t, users = team["http"], team["t"], team["users"]
    narrow = bearer(person_token(app, t["id"], users["owner"].id, READ + ["members:manage"], "Narrow App"))
    r = patch(http, narrow, users["viewer"].id, ["owner"])
    assert r.status_code == 422 and "Only an owner can make someone an owner" in r.get_data(as_text=True)
    assert patch(http, narrow, users["admin"].id, ["viewer"]).status_code == 409  # an admin holds more than the token
    full = bearer(person_token(app, t["id"], users["owner"].id, EVERYTHING, "Full App"))
    assert patch(http, full, users["viewer"].id, ["owner"]).status_code == 200
