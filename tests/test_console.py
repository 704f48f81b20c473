"""The system console and the tenant lifecycle: create a tenant with its first owner, plans and
limits (race-safe), suspend, archive and reactivate, as members and system admins see it."""
from __future__ import annotations

import io
import threading

import pytest
import sqlalchemy as sa

from conftest import csrf_token, login
from portal.accounts.models import UserType
from portal.database.context import acting_as, tenant_scope
from portal.devices.models import Device
from portal.extensions import db
from portal.invitations.models import Invitation
from portal.tenancy.models import MembershipRole
from portal.tenants.models import Tenant, TenantStatus
from test_workspace import HX, device_form


def post(client, url, **data):
    return client.post(url, data={"csrf_token": csrf_token(client), **data})


@pytest.fixture
def sysadmin(app, factory):
    client = app.test_client()
    login(client, factory.user(user_type=UserType.SYSTEM_ADMIN, name="Sys Admin").email)
    return client


@pytest.fixture
def org(app, factory):
    users = {r: factory.user(name=f"{r.title()} Lifecycle") for r in ("owner", "member")}
    t = factory.tenant(members=users, sites=1, devices=2)
    clients = {}
    for r, u in users.items():
        clients[r] = app.test_client()
        login(clients[r], u.email)
    return {"t": t, "slug": t["slug"], "users": users, "c": clients}


def tenant_row(app, slug) -> Tenant:
    with app.app_context():
        t = db.session.scalar(sa.select(Tenant).where(Tenant.slug == slug))
        db.session.expunge(t)
        return t


def set_limits(app, tenant_id, **limits):
    with app.app_context(), acting_as(db.session, "test:console"):  # as the console would
        db.session.execute(sa.update(Tenant).where(Tenant.id == tenant_id).values(**limits))
        db.session.commit()


# --- Creating a tenant -------------------------------------------------------------------------

def test_system_admin_creates_a_tenant_and_invites_its_first_owner(app, sysadmin, factory):
    slug = f"new-{factory._unique()}"
    for bad, field_error in (({"slug": "Not A Slug!"}, "Use lowercase letters"),
                             ({"slug": "acme-corp"}, "is taken"),
                             ({"owner_email": "nobody"}, "Invalid email")):
        form = {"name": "New Org", "slug": slug, "plan": "starter", "owner_email": "first@example.com", **bad}
        r = post(sysadmin, "/admin/tenants/new", **form)
        assert r.status_code == 422 and field_error in r.get_data(as_text=True), bad
    r = post(sysadmin, "/admin/tenants/new", name="New Org", slug=slug, plan="starter",
             owner_email="First@Example.com")
    assert r.status_code == 303 and r.headers["Location"] == f"/admin/tenants/{slug}"
    t = tenant_row(app, slug)
    assert (t.plan, t.max_users, t.max_sites, t.max_devices, t.status) == ("starter", 10, 5, 500, TenantStatus.ACTIVE)
    with app.app_context(), tenant_scope(db.session, t.id, actor="test:setup"):
        [inv] = db.session.scalars(sa.select(Invitation).where(Invitation.tenant_id == t.id)).all()
        assert (inv.email, inv.role) == ("first@example.com", MembershipRole.OWNER)
        actions = db.session.scalars(sa.text("SELECT action FROM audit_logs")).all()
    assert sorted(actions) == ["invitation.create", "tenant.create"]
    page = sysadmin.get(f"/admin/tenants/{slug}").get_data(as_text=True)
    assert "New Org" in page and "owner's invitation may still be pending" in page


def test_console_search_filters_and_pages(app, sysadmin, factory):
    prefix = f"zq{factory._unique()}"
    for i in range(3):
        factory.tenant(slug=f"{prefix}-{i}", name=f"{prefix} Org {i}", sites=0, plan="pro")
    html = sysadmin.get(f"/admin/tenants?q={prefix}").get_data(as_text=True)
    assert all(f"{prefix}-{i}" in html for i in range(3))
    fragment = sysadmin.get(f"/admin/tenants?q={prefix}&plan=free",
                            headers={**HX, "HX-Target": "tenant-table"}).get_data(as_text=True)
    assert "<html" not in fragment and "No tenant matches" in fragment
    suspended = sysadmin.get("/admin/tenants?status=suspended").get_data(as_text=True)
    assert "gamma-logistics" in suspended and "acme-corp" not in suspended
    assert sysadmin.get("/admin/tenants?after=garbage|not-a-uuid&sort=created").status_code == 200


# --- Suspend, archive, reactivate --------------------------------------------------------------

def test_suspended_tenant_shows_its_members_the_reason_and_nothing_else(app, sysadmin, org):
    slug, member = org["slug"], org["c"]["member"]
    r = post(sysadmin, f"/admin/tenants/{slug}/status", action="suspend", reason="")
    assert r.status_code == 422 and "Give a reason" in r.get_data(as_text=True)
    r = post(sysadmin, f"/admin/tenants/{slug}/status", action="suspend", reason="Invoice overdue")
    assert r.status_code == 303
    for url in (f"/t/{slug}/", f"/t/{slug}/devices/", f"/t/{slug}/devices/{org['t']['devices'][0]}"):
        page = member.get(url)
        html = page.get_data(as_text=True)
        assert page.status_code == 423 and "is suspended" in html and "Invoice overdue" in html, url
        assert f"Device 0-0 {slug}" not in html and "SN-" not in html
    r = member.post(f"/t/{slug}/devices/{org['t']['devices'][0]}/status",
                    data={"csrf_token": csrf_token(member), "status": "error"})
    assert r.status_code == 423
    with app.app_context(), tenant_scope(db.session, org["t"]["id"], actor="test:setup"):
        assert db.session.get(Device, (org["t"]["id"], org["t"]["devices"][0])).status.value == "online"
    # Strangers still learn nothing; the console still shows it; the switcher marks it.
    outsider = app.test_client()
    login(outsider, org["users"]["owner"].email)
    assert "suspended" in outsider.get("/tenants").get_data(as_text=True)
    assert sysadmin.get(f"/admin/tenants/{slug}").status_code == 200
    assert post(sysadmin, f"/admin/tenants/{slug}/status", action="reactivate", reason="").status_code == 303
    assert member.get(f"/t/{slug}/devices/").status_code == 200
    with app.app_context(), tenant_scope(db.session, org["t"]["id"], actor="test:setup"):
        history = db.session.scalars(sa.text(
            "SELECT action FROM audit_logs WHERE resource_type = 'tenant' ORDER BY created_at")).all()
    assert history == ["tenant.suspend", "tenant.reactivate"]


def test_non_members_of_a_suspended_tenant_get_the_same_404(app, factory, org, sysadmin):
    post(sysadmin, f"/admin/tenants/{org['slug']}/status", action="suspend", reason="Paused")
    stranger = app.test_client()
    login(stranger, factory.user().email)
    assert stranger.get(f"/t/{org['slug']}/").status_code == 404
    assert stranger.get("/t/no-such-tenant-at-all/").status_code == 404


def test_archived_tenant_is_read_only(app, sysadmin, org):
    slug, owner = org["slug"], org["c"]["owner"]
    assert post(sysadmin, f"/admin/tenants/{slug}/status", action="archive", reason="Project ended").status_code == 303
    page = owner.get(f"/t/{slug}/devices/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "is archived" in html and f"SN-{slug}-0-0" in html
    assert "Invitations" not in owner.get(f"/t/{slug}/").get_data(as_text=True)  # writing tabs are gone
    assert owner.get(f"/t/{slug}/devices/new").status_code == 403
    r = owner.post(f"/t/{slug}/members/leave", data={"csrf_token": csrf_token(owner)})
    assert r.status_code == 423 and "can be read, not changed" in r.get_data(as_text=True)


def test_status_changes_follow_the_lifecycle(app, sysadmin, org):
    r = post(sysadmin, f"/admin/tenants/{org['slug']}/status", action="reactivate", reason="")
    assert r.status_code == 422 and "cannot be reactivated" in r.get_data(as_text=True)
    r = post(sysadmin, f"/admin/tenants/{org['slug']}/status", action="explode", reason="x")
    assert r.status_code == 422


# --- Plans and limits ---------------------------------------------------------------------------

def test_plan_change_and_per_tenant_override(app, sysadmin, org):
    slug = org["slug"]
    r = post(sysadmin, f"/admin/tenants/{slug}/plan", plan="free", use_plan="y", max_users="1", max_sites="1",
             max_devices="1", max_integrations="0", max_api_clients="0")
    assert r.status_code == 303
    t = tenant_row(app, slug)
    assert (t.plan, t.max_users, t.max_sites, t.max_devices) == ("free", 5, 2, 50)
    r = post(sysadmin, f"/admin/tenants/{slug}/plan", plan="free", max_users="7", max_sites="3",
             max_devices="60", max_integrations="0", max_api_clients="0")
    assert r.status_code == 303
    t = tenant_row(app, slug)
    assert (t.max_users, t.max_sites, t.max_devices) == (7, 3, 60)
    assert "plan: 50" in sysadmin.get(f"/admin/tenants/{slug}").get_data(as_text=True)
    for bad in ({"max_users": "0"}, {"max_devices": "-1"}, {"max_sites": "many"}, {"plan": "platinum"}):
        form = {"plan": "free", "max_users": "7", "max_sites": "3", "max_devices": "60", "max_integrations": "0", "max_api_clients": "0",
                **bad}
        assert post(sysadmin, f"/admin/tenants/{slug}/plan", **form).status_code == 422, bad


def test_site_and_device_limits_are_enforced_with_a_clear_message(app, org):
    t, slug, owner = org["t"], org["slug"], org["c"]["owner"]
    set_limits(app, t["id"], max_sites=1, max_devices=2)
    # The create buttons say why they are off (a member, who cannot create, is told nothing).
    sites_page = owner.get(f"/t/{slug}/sites/").get_data(as_text=True)
    assert 'aria-disabled="true" aria-describedby="site-limit">New site' in sites_page
    assert "allows 1 active sites and all are in use" in sites_page
    devices_page = owner.get(f"/t/{slug}/devices/").get_data(as_text=True)
    assert 'aria-describedby="device-limit">New device' in devices_page and f'href="/t/{slug}/devices/new"' not in devices_page
    assert "device-limit" not in org["c"]["member"].get(f"/t/{slug}/devices/").get_data(as_text=True)
    r = post(owner, f"/t/{slug}/sites/new", name="One too many", timezone="UTC")
    assert r.status_code == 422 and "allows 1 active sites and 0 are free" in r.get_data(as_text=True)
    r = post(owner, f"/t/{slug}/devices/new", **device_form(t["sites"][0], serial_number="LIMIT-1"))
    assert r.status_code == 422 and "allows 2 devices in service" in r.get_data(as_text=True)
    csv = ("name,type,serial_number,site\n" +
           "".join(f"Imported {i},sensor,IMP-{i},Site 0 {slug}\n" for i in range(3)))
    r = owner.post(f"/t/{slug}/devices/import", data={"csrf_token": csrf_token(owner),
                                                      "file": (io.BytesIO(csv.encode()), "devices.csv")})
    assert r.status_code == 422 and "this adds 3" in r.get_data(as_text=True)
    # Decommissioning frees a place; bringing it back needs one.
    device = t["devices"][0]
    assert post(owner, f"/t/{slug}/devices/{device}/decommission").status_code == 303
    assert post(owner, f"/t/{slug}/devices/new", **device_form(t["sites"][0], serial_number="LIMIT-2")).status_code == 303
    r = owner.post(f"/t/{slug}/devices/{device}/status", headers=HX,
                   data={"csrf_token": csrf_token(owner), "status": "online"})
    assert r.status_code == 422 and "devices in service" in r.get_data(as_text=True)


def test_twenty_concurrent_creations_at_the_limit_leave_exactly_the_limit(app, org):
    t, slug = org["t"], org["slug"]
    set_limits(app, t["id"], max_devices=5)  # two already there: room for three
    clients = []
    for _ in range(20):
        c = app.test_client()
        login(c, org["users"]["owner"].email)
        clients.append((c, csrf_token(c)))
    barrier, results = threading.Barrier(20), []

    def create(i, c, token):
        barrier.wait()
        results.append(c.post(f"/t/{slug}/devices/new", data={
            "csrf_token": token, **device_form(t["sites"][0], name=f"Race {i}", serial_number=f"RACE-{i}")}).status_code)

    threads = [threading.Thread(target=create, args=(i, *pair)) for i, pair in enumerate(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results.count(303) == 3 and results.count(422) == 17, results
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Device).where(Device.tenant_id == t["id"])) == 5


# --- Users ---------------------------------------------------------------------------------------

def test_system_admin_finds_a_user_and_suspends_then_reactivates_them(app, sysadmin, org):
    person = org["users"]["member"]
    listing = sysadmin.get(f"/admin/users?q={person.email.split('@')[0].upper()}").get_data(as_text=True)
    assert f'data-email="{person.email}"' in listing and "data-email=" in listing
    page = sysadmin.get(f"/admin/users/{person.id}").get_data(as_text=True)
    assert f"Tenant {org['slug']}" in page and "Member" in page  # memberships, with the role's name
    assert "data-login-count>1<" in page and "Last activity" in page  # the member client signed in once
    member = org["c"]["member"]
    assert member.get(f"/t/{org['slug']}/").status_code == 200
    r = post(sysadmin, f"/admin/users/{person.id}/status", action="suspend")
    assert r.status_code == 422 and "Give a reason" in r.get_data(as_text=True)
    r = post(sysadmin, f"/admin/users/{person.id}/status", action="suspend", reason="Left the company")
    assert r.status_code == 303
    page = sysadmin.get(f"/admin/users/{person.id}").get_data(as_text=True)
    assert "is suspended; 1 session ended" in page and "Reason: Left the company" in page
    assert 'data-status="suspended"' in page and "Reactivate the account" in page
    assert member.get(f"/t/{org['slug']}/").status_code == 302  # signed out: its session ended
    with app.app_context(), tenant_scope(db.session, org["t"]["id"], actor="test:setup"):
        assert "user.suspend" in db.session.scalars(sa.text("SELECT action FROM audit_logs")).all()
    audit = member_of_audit(app, org)
    assert f"suspended the account of {person.email} (system console): Left the company" in audit
    assert post(sysadmin, f"/admin/users/{person.id}/status", action="reactivate").status_code == 303
    login(app.test_client(), person.email)
    r = post(sysadmin, f"/admin/users/{person.id}/reset")
    assert r.status_code == 303


def member_of_audit(app, org) -> str:
    """The tenant's audit log page as its owner reads it."""
    return org["c"]["owner"].get(f"/t/{org['slug']}/audit/").get_data(as_text=True)


def test_system_admin_cannot_suspend_themselves(app, factory):
    admin = factory.user(user_type=UserType.SYSTEM_ADMIN)
    client = app.test_client()
    login(client, admin.email)
    r = post(client, f"/admin/users/{admin.id}/status", action="suspend", reason="oops")
    assert r.status_code == 422 and "cannot suspend your own account" in r.get_data(as_text=True)
