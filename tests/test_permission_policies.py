"""The database refuses what the role does not allow (issue 26, migration 0027).

Each guarded view is run with the application's permission checks removed (`TenantContext.can`
answers yes to everything, as if every `@requires` and service check had been forgotten) by a
role that lacks the permission: the write policies refuse it, the person gets a 403 and nothing
is written. The same request by a role that holds the permission succeeds; the worker's path
(`tenant_scope` with an actor) writes; the site scope holds in the database too.
"""
from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from conftest import csrf_token, login
from portal.api.models import ApiClient
from portal.database.context import tenant_scope
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
    # Sees every site, changes none: without sites:write even a site they would see is refused.
    roles["seer"] = new_role(app, t["id"], "Seer", ["tenant:view", "sites:view", "sites:see-all"])
    users["seer"] = factory.user(name="Seer Policy")
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        for role in ("member", "viewer"):  # both see site 0 only
            db.session.add(SiteAssignment(tenant_id=t["id"], site_id=t["sites"][0], user_id=users[role].id))
        db.session.add(Membership(tenant_id=t["id"], user_id=target.id, custom_role_id=roles["minimal"]))
        db.session.add(Membership(tenant_id=t["id"], user_id=users["seer"].id, custom_role_id=roles["seer"]))
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
    ("site create (sites:write)", _site, "seer", "admin", "site"),
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


def test_only_someone_who_sees_every_site_creates_one(app, org):
    """A new site is nobody's assignment yet: the database would refuse to show it to its creator
    (and so to write it), so a sites:write holder without sites:see-all is told before."""
    role = new_role(app, org["t"]["id"], "Site builder", ["tenant:view", "sites:view", "sites:write"])
    with app.app_context(), tenant_scope(db.session, org["t"]["id"], actor="test:setup"):
        db.session.execute(sa.update(Membership).where(Membership.tenant_id == org["t"]["id"],
                                                       Membership.user_id == org["users"]["viewer"].id)
                           .values(role=None, custom_role_id=role))
        db.session.commit()
    r = _site(org | {"client": org["c"]["viewer"]})
    assert r.status_code == 422 and "Only someone who sees every site can create one" in r.get_data(as_text=True)
    assert _written(app, org, "site") == 0


# --- Who writes as the system ----------------------------------------------------------------

def test_a_job_writes_as_its_actor_and_a_scope_without_one_only_reads(app, org):
    tid = org["t"]["id"]
    with app.app_context():
        with tenant_scope(db.session, tid, actor="job:test.policies"):
            db.session.add(Site(tenant_id=tid, name="Made by a job", timezone="UTC"))
            db.session.execute(sa.update(Device).where(Device.tenant_id == tid).values(firmware_version="9.9"))
        db.session.commit()
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security policy"):
            with tenant_scope(db.session, tid, actor=None):
                # It reads every site (no member's scope applies to a job) ...
                assert db.session.scalar(sa.select(sa.func.count()).select_from(Device)) == 4
                db.session.add(Site(tenant_id=tid, name="Not by a reader", timezone="UTC"))
                db.session.flush()  # ... and writes nothing a permission guards
        db.session.rollback()
        with pytest.raises(ValueError, match="kind:what"):
            tenant_scope(db.session, tid, actor="no reason given")
    assert count(app, tid, Site, Site.name == "Made by a job") == 1
    assert count(app, tid, Site, Site.name == "Not by a reader") == 0
    assert count(app, tid, Device, Device.firmware_version == "9.9") == 4


def probe(monkeypatch, app, sql: str, params=None):
    """The dashboard's view replaced by one statement of raw SQL, run in the member's request as
    the request left the database (tenant, user, permissions): no application filter at all."""
    def view():
        result = db.session.execute(sa.text(sql), params or {})
        return {"rows": [[str(v) for v in row] for row in result.all()] if result.returns_rows else result.rowcount}
    monkeypatch.setitem(app.view_functions, "dashboard.index", view)


def test_a_members_request_has_their_permissions_and_never_an_actor(app, org, monkeypatch):
    probe(monkeypatch, app, "SELECT current_setting('app.actor', true), current_setting('app.permissions', true), "
                            "current_setting('app.site_ids', true)")
    actor, permissions, site_ids = org["c"]["viewer"].get(f"/t/{org['slug']}/").get_json()["rows"][0]
    assert actor == "" and site_ids == "{%s}" % org["t"]["sites"][0]  # the one site they are assigned to
    assert set(permissions.split(",")) == {"tenant:view", "sites:view", "devices:view", "members:view", "tasks:view"}
    actor, permissions, site_ids = org["c"]["owner"].get(f"/t/{org['slug']}/").get_json()["rows"][0]
    assert actor == "" and site_ids == ""  # every site
    assert {"tenant:manage", "sites:see-all", "audit:manage"} <= set(permissions.split(","))


def test_the_site_scope_holds_in_the_database(app, org, monkeypatch):
    probe(monkeypatch, app, "SELECT (SELECT count(*) FROM sites), (SELECT count(*) FROM devices), "
                            "(SELECT count(*) FROM tasks)")
    with app.app_context(), tenant_scope(db.session, org["t"]["id"], actor="test:setup"):
        for site, title in ((org["t"]["sites"][0], "Here"), (org["t"]["sites"][1], "There"), (None, "Nowhere")):
            db.session.add(Task(tenant_id=org["t"]["id"], title=title, site_id=site, created_by=org["users"]["owner"].id))
        db.session.commit()
    # Assigned to site 0 of 2: its site, its 2 devices, its task and the one at no site.
    assert org["c"]["viewer"].get(f"/t/{org['slug']}/").get_json()["rows"] == [["1", "2", "2"]]
    assert org["c"]["owner"].get(f"/t/{org['slug']}/").get_json()["rows"] == [["2", "4", "3"]]


def test_ones_own_membership_changes_only_by_its_last_activity(app, org, monkeypatch):
    viewer = org["users"]["viewer"].id
    probe(monkeypatch, app, "UPDATE user_tenant_associations SET last_active_at = now() WHERE user_id = :u",
          {"u": viewer})
    assert org["c"]["viewer"].get(f"/t/{org['slug']}/").get_json() == {"rows": 1}
    probe(monkeypatch, app, "UPDATE user_tenant_associations SET role = 'owner' WHERE user_id = :u", {"u": viewer})
    refused = org["c"]["viewer"].get(f"/t/{org['slug']}/")
    assert refused.status_code == 403 and REFUSED in refused.get_data(as_text=True)
    assert count(app, org["t"]["id"], Membership, Membership.user_id == viewer, Membership.role == "owner") == 0


def test_the_tenant_row_changes_only_in_its_own_tenant_with_the_permission(app, org, monkeypatch):
    probe(monkeypatch, app, "UPDATE tenants SET name = 'Taken over' WHERE id = :t", {"t": org["other"]["id"]})
    assert org["c"]["owner"].get(f"/t/{org['slug']}/").status_code == 403  # another tenant's row
    probe(monkeypatch, app, "UPDATE tenants SET name = 'Renamed' WHERE id = :t", {"t": org["t"]["id"]})
    assert org["c"]["admin"].get(f"/t/{org['slug']}/").status_code == 403  # admins lack tenant:manage
    assert org["c"]["owner"].get(f"/t/{org['slug']}/").get_json() == {"rows": 1}
    with app.app_context():
        names = dict(db.session.execute(sa.select(Tenant.id, Tenant.name).where(
            Tenant.id.in_([org["t"]["id"], org["other"]["id"]]))).all())
    assert names[org["t"]["id"]] == "Renamed" and names[org["other"]["id"]] != "Taken over"


# --- Principals that are not members ---------------------------------------------------------

@pytest.fixture
def serving(db_urls):
    engine = sa.create_engine(db_urls["app"], poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def settings(conn) -> tuple[str, str, str]:
    return conn.execute(sa.text("SELECT current_setting('app.actor', true), current_setting('app.permissions', true), "
                                "current_setting('app.site_ids', true)")).one()


def test_an_api_token_may_do_what_its_scopes_say_on_its_sites(app, org, serving, client):
    from portal.api import credentials
    from test_api import token_for
    site = org["t"]["sites"][0]
    token = token_for(app, client, org["t"]["id"], ["devices:view", "sites:view"], site_ids=[site])
    with serving.begin() as conn:
        conn.execute(sa.text("SELECT set_config('app.actor', 'test:stale', true)"))
        conn.execute(sa.text("SELECT * FROM portal_api_enter_token(:h)"), {"h": credentials.token_hash(token)}).one()
        assert settings(conn) == ("", "devices:view,sites:view", "{%s}" % site)  # the actor is cleared first
        assert conn.execute(sa.text("SELECT count(*) FROM devices")).scalar() == 2  # its one site's
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security policy"):
            conn.execute(sa.text("INSERT INTO sites (tenant_id, name) VALUES (:t, 'By a token')"), {"t": org["t"]["id"]})


def test_an_api_view_that_forgets_its_scope_meets_the_database(app, org, client, monkeypatch):
    from test_api import bearer, token_for
    token = token_for(app, client, org["t"]["id"], ["sites:view"])
    monkeypatch.setattr(TenantContext, "can", lambda self, permission: True)
    r = client.post("/api/v1/sites", json={"name": "By a reading token", "timezone": "UTC"}, headers=bearer(token))
    assert r.status_code == 403 and r.get_json()["detail"] == REFUSED
    assert count(app, org["t"]["id"], Site, Site.name == "By a reading token") == 0


def test_agents_scim_and_hooks_enter_with_what_they_may_do(app, org, serving):
    from portal.agents.credentials import hash_secret
    from portal.agents.models import AgentCredential
    from portal.scim.models import ScimToken
    from portal.scim.tokens import token_hash
    tid, device = org["t"]["id"], org["t"]["devices"][0]
    with app.app_context(), tenant_scope(db.session, tid, actor="test:setup"):
        db.session.add(AgentCredential(tenant_id=tid, device_id=device, secret_hash=hash_secret("pda_policy")))
        db.session.add(ScimToken(tenant_id=tid, name="IdP", token_hash=token_hash("scim-policy")))
        hook = Integration(tenant_id=tid, name="Doors", provider="inbound", config={}, enabled=True)
        db.session.add(hook)
        db.session.flush()
        hook_id = hook.id
        db.session.commit()
    with serving.begin() as conn:
        conn.execute(sa.text("SELECT * FROM portal_agent_credential(:h)"), {"h": hash_secret("pda_policy")}).one()
        assert settings(conn) == (f"agent:{device}", "", "")
    with serving.begin() as conn:
        conn.execute(sa.text("SELECT * FROM portal_scim_enter(:h)"), {"h": token_hash("scim-policy")}).one()
        actor, permissions, _ = settings(conn)
        assert actor == "" and {"members:manage", "sso:manage"} <= set(permissions.split(","))
    with serving.begin() as conn:
        assert conn.execute(sa.text("SELECT portal_integration_inbound(:i)"), {"i": hook_id}).scalar() == tid
        assert settings(conn) == ("", "events:write", "")  # before its signature is checked: events only
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security policy"):
            conn.execute(sa.text("UPDATE integrations SET name = 'Renamed by a hook' WHERE id = :i"), {"i": hook_id})


def test_validate_reports_a_tenant_table_without_permission_policies(db_urls, monkeypatch):
    from portal.database import validate
    engine = sa.create_engine(db_urls["owner"], poolclass=sa.pool.NullPool)
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(sa.text("CREATE TABLE careless (tenant_id uuid NOT NULL, id uuid, PRIMARY KEY (tenant_id, id))"))
        conn.execute(sa.text("ALTER TABLE careless ENABLE ROW LEVEL SECURITY"))
        conn.execute(sa.text("ALTER TABLE careless FORCE ROW LEVEL SECURITY"))
        conn.execute(sa.text("CREATE POLICY tenant_isolation ON careless USING (tenant_id = (SELECT nullif("
                             "current_setting('app.tenant_id', true), ''))::uuid) WITH CHECK (tenant_id = (SELECT "
                             "nullif(current_setting('app.tenant_id', true), ''))::uuid)"))
        [problem] = validate.tenant_table_problems(conn)["careless"]
        assert problem.startswith("writes have no permission policy (INSERT, UPDATE, DELETE)")
        conn.execute(sa.text("CREATE POLICY may_insert ON careless AS RESTRICTIVE FOR INSERT "
                             "WITH CHECK ((SELECT portal_may('sites:write')))"))
        assert "(UPDATE, DELETE)" in validate.tenant_table_problems(conn)["careless"][0]
        monkeypatch.setitem(validate.SIDE_EFFECT_TABLES, "careless", "written beside every change")
        assert "careless" not in validate.tenant_table_problems(conn)
        tx.rollback()
    engine.dispose()


def test_the_definer_functions_owner_bypasses_row_level_security(db_urls):
    """The SECURITY DEFINER doors read before a tenant is entered: their owner must bypass RLS
    (and so the permission policies too; each door sets what its principal may do afterwards)."""
    from portal.database.validate import definer_owner_problems
    engine = sa.create_engine(db_urls["owner"], poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert definer_owner_problems(conn) == []
    engine.dispose()


def test_the_portals_own_events_are_the_reserved_namespaces():
    """The analytics_events INSERT policy lets anyone record the portal's own events (side effects);
    its list of namespaces is the one custom events may not use."""
    import importlib.util
    from pathlib import Path
    from portal.analytics.events import RESERVED
    path = Path(__file__).parent.parent / "migrations" / "versions" / "0027_permission_policies.py"
    spec = importlib.util.spec_from_file_location("m0027", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.OWN_EVENT == "(split_part(event_type, '.', 1) IN (%s))" % ", ".join(f"'{n}'" for n in RESERVED)
