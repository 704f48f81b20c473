"""The database refuses what the role does not allow (issue 26, migration 0027).

Each guarded view is run with the application's permission checks removed (`TenantContext.can`
answers yes to everything, as if every `@requires` and service check had been forgotten) by a
role that lacks the permission: the write policies refuse it, the person gets a 403 and nothing
is written. The same request by a role that holds the permission succeeds; the worker's path
(`tenant_scope` with an actor) writes; the site scope holds in the database too.
"""
from __future__ import annotations

import hashlib
import secrets

import pytest
import sqlalchemy as sa

from conftest import csrf_token, login
from portal.api.models import ApiClient
from portal.audit.models import AuditLog
from portal.database.context import acting_as, tenant_scope
from portal.devices.models import Device
from portal.extensions import db
from portal.integrations.models import Integration
from portal.invitations.models import Invitation
from portal.sites.models import Site, SiteAssignment
from portal.sso.models import SsoConnection, SsoDomain
from portal.tasks.models import Task
from portal.tenancy.context import TenantContext
from portal.tenancy.models import Membership, TenantRole, TenantRolePermission
from portal.tenants.models import Tenant

REFUSED = "You do not have permission to do that."


@pytest.fixture
def org(app, factory):
    users = {role: factory.user(name=f"{role.title()} Policy") for role in ("owner", "admin", "member", "viewer")}
    target = factory.user(name="Minimal Policy")
    t = factory.tenant(members=users, sites=2, devices=2)
    other = factory.tenant(members={"owner": factory.user(name="Other Owner")}, sites=1, devices=1)
    # Two custom roles that only open the organization: a viewer could give one (it holds as much),
    # and `target` holds the first, so a viewer may change their role as far as the rules go.
    roles = {name: new_role(app, t["id"], f"Minimal {name}", ["tenant:view"]) for name in ("minimal", "other")}
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        for role in ("member", "viewer"):  # both see site 0 only
            db.session.add(SiteAssignment(tenant_id=t["id"], site_id=t["sites"][0], user_id=users[role].id))
        db.session.add(Membership(tenant_id=t["id"], user_id=target.id, custom_role_id=roles["minimal"]))
        connection = SsoConnection(tenant_id=t["id"], name="Doomed IdP", issuer="https://idp.example.com",
                                   client_id="portal")
        db.session.add(connection)
        db.session.flush()
        connection_id = connection.id
        db.session.commit()
    clients = {}
    for role, user in users.items():
        clients[role] = app.test_client()
        login(clients[role], user.email)
    return {"t": t, "slug": t["slug"], "users": users, "c": clients, "other": other, "target": target.id,
            "roles": roles, "connection": connection_id}


def count(app, tenant_id, model, *where) -> int:
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:read"):
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(model.tenant_id == tenant_id,
                                                                                    *where))


def post(client, path, /, **data):
    return client.post(path, data={"csrf_token": csrf_token(client), **data})


def new_role(app, tenant_id, name, permissions) -> str:
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        role = TenantRole(tenant_id=tenant_id, name=name)
        db.session.add(role)
        db.session.flush()
        role.grants = [TenantRolePermission(tenant_id=tenant_id, role_id=role.id, permission=p) for p in permissions]
        db.session.commit()
        return str(role.id)


def device_form(site_id, **changes) -> dict:
    return {"name": "Renamed by a policy test", "type": "sensor", "serial_number": f"SN-POL-{secrets.token_hex(3)}",
            "site_id": str(site_id), "status": "online", **changes}


# (name, the request as a function of the org, what it would write: (model, condition) for count())
def _site(o):
    return post(o["client"], f"/t/{o['slug']}/sites/new", name="Forbidden Site", timezone="UTC")


def _device_edit(o):
    device = o["t"]["devices"][0]
    return post(o["client"], f"/t/{o['slug']}/devices/{device}/edit", **device_form(o["t"]["sites"][0]))


def _device_status(o):
    return post(o["client"], f"/t/{o['slug']}/devices/{o['t']['devices'][0]}/status", status="maintenance")


def _member_role(o):
    return post(o["client"], f"/t/{o['slug']}/members/{o['target']}/role", role=o["roles"]["other"])


def _member_remove(o):
    return post(o["client"], f"/t/{o['slug']}/members/{o['target']}/remove")


def _invitation(o):
    return post(o["client"], f"/t/{o['slug']}/invitations/", emails="forbidden-invitee@example.com", role="viewer")


def _role(o):
    return post(o["client"], f"/t/{o['slug']}/roles/new", name="Forbidden Role", permissions=["devices:view"])


def _task(o):
    return post(o["client"], f"/t/{o['slug']}/tasks/new", title="Forbidden task", priority="medium")


def _api_client(o):
    return post(o["client"], f"/t/{o['slug']}/api-clients/new", name="Forbidden client", scopes=["devices:view"])


def _integration(o):
    return post(o["client"], f"/t/{o['slug']}/integrations/new/webhook", name="Forbidden hook",
                url="http://127.0.0.1:9/hook", events=["device.status_changed"])


def _sso_connection_delete(o):
    return post(o["client"], f"/t/{o['slug']}/settings/sso/{o['connection']}/delete")


def _sso_domain(o):
    return post(o["client"], f"/t/{o['slug']}/settings/sso/domains", domain="forbidden.example.com")


def _audit_retention(o):
    return post(o["client"], f"/t/{o['slug']}/audit/retention", days="400")


def _written(app, o, what):
    tid = o["t"]["id"]
    if what == "site":
        return count(app, tid, Site, Site.name == "Forbidden Site")
    if what == "device":
        return count(app, tid, Device, Device.name == "Renamed by a policy test")
    if what == "status":
        return count(app, tid, Device, Device.id == o["t"]["devices"][0], Device.status == "maintenance")
    if what == "role_change":
        return count(app, tid, Membership, Membership.user_id == o["target"],
                     Membership.custom_role_id == o["roles"]["other"])
    if what == "removed":
        return 1 - count(app, tid, Membership, Membership.user_id == o["target"])
    if what == "invitation":
        return count(app, tid, Invitation, Invitation.email == "forbidden-invitee@example.com")
    if what == "role":
        return count(app, tid, TenantRole, TenantRole.name == "Forbidden Role")
    if what == "task":
        return count(app, tid, Task, Task.title == "Forbidden task")
    if what == "api_client":
        return count(app, tid, ApiClient, ApiClient.name == "Forbidden client")
    if what == "integration":
        return count(app, tid, Integration, Integration.name == "Forbidden hook")
    if what == "sso_deleted":
        return 1 - count(app, tid, SsoConnection, SsoConnection.id == o["connection"])
    if what == "sso_domain":
        return count(app, tid, SsoDomain, SsoDomain.domain == "forbidden.example.com")
    if what == "retention":
        with app.app_context():
            settings = db.session.scalar(sa.select(Tenant.settings).where(Tenant.id == tid))
        return int(((settings or {}).get("audit") or {}).get("retention_days") == 400)
    raise AssertionError(what)


GUARDED = [
    # view, the role that lacks the permission, one that holds it, what it writes
    ("site create (sites:write)", _site, "viewer", "admin", "site"),
    ("device edit (devices:write)", _device_edit, "viewer", "admin", "device"),
    # devices:status lets a member change a device's status, nothing else of it
    ("device edit with devices:status only", _device_edit, "member", "owner", "device"),
    ("device status (devices:status)", _device_status, "viewer", "member", "status"),
    ("member role change (members:manage)", _member_role, "viewer", "admin", "role_change"),
    # A DELETE whose check depends on the row (one's own membership may go: leaving) filters
    # instead of raising; the service counts and refuses.
    ("member removal (members:manage)", _member_remove, "viewer", "admin", "removed"),
    ("invitation create (invitations:manage)", _invitation, "viewer", "admin", "invitation"),
    ("role create (roles:manage)", _role, "viewer", "admin", "role"),
    ("task create (tasks:write)", _task, "viewer", "member", "task"),
    ("API client create (api:manage)", _api_client, "viewer", "admin", "api_client"),
    ("integration create (integrations:manage)", _integration, "member", "admin", "integration"),
    # A DELETE the policy refuses raises (portal_must) rather than deleting nothing in silence.
    ("SSO connection delete (sso:manage)", _sso_connection_delete, "admin", "owner", "sso_deleted"),
    ("SSO domain claim (sso:manage)", _sso_domain, "admin", "owner", "sso_domain"),
    ("audit retention (audit:manage)", _audit_retention, "admin", "owner", "retention"),
]


@pytest.mark.parametrize("name, request_, weak, strong, what", GUARDED, ids=[g[0] for g in GUARDED])
def test_a_forgotten_permission_check_meets_the_database(app, org, monkeypatch, name, request_, weak, strong, what):
    with monkeypatch.context() as patch:
        # The application forgets every permission check (each @requires, each service's ctx.can):
        # what the role's permissions are is known to the database alone.
        patch.setattr(TenantContext, "can", lambda self, permission: True)
        refused = request_(org | {"client": org["c"][weak]})
    assert refused.status_code == 403, (name, refused.status_code, refused.get_data(as_text=True)[:500])
    assert REFUSED in refused.get_data(as_text=True)
    assert _written(app, org, what) == 0, f"{name}: written although refused"

    done = request_(org | {"client": org["c"][strong]})
    assert done.status_code in (200, 303), (name, done.status_code, done.get_data(as_text=True)[:500])
    assert _written(app, org, what) == 1, f"{name}: {strong} could not"
