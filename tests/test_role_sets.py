"""Several roles per member (issue 26): a base role and further custom roles, whose permissions
add up, on the members page, in invitations, in the database's user_has_permission and at the
request edge; carol (Viewer + Field technician) in the sample data."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from conftest import PASSWORD, SEED_PASSWORD, Factory, csrf_from, csrf_token, login
from mailbox import link_in
from portal.database.context import tenant_scope, user_scope
from portal.extensions import db
from portal.tenancy.models import Membership, UserRole
from test_invitations import BASE, mail_app, smtp  # noqa: F401 (fixtures)
from test_roles import make_role
from test_workspace import HX, serials

ACME = "/t/acme-corp"


def post(client, url, headers=None, **data):
    return client.post(url, headers=headers or {}, data={"csrf_token": csrf_token(client), **data})


def further_of(app, tenant_id, user_id) -> set[str]:
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        return {str(r) for r in db.session.scalars(
            sa.select(UserRole.role_id).join(Membership, (Membership.tenant_id == UserRole.tenant_id)
                                             & (Membership.id == UserRole.membership_id))
            .where(UserRole.tenant_id == tenant_id, Membership.user_id == user_id))}


def audit_rows(app, tenant_id, action):
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        return db.session.execute(sa.text(
            "SELECT resource_id, before, after, details->>'reason' AS reason FROM audit_logs WHERE tenant_id = :t AND action = :a "
            "ORDER BY seq"), {"t": tenant_id, "a": action}).all()


@pytest.fixture
def team(app, factory):
    users = {r: factory.user(name=f"{r.title()} Person") for r in ("owner", "admin", "member", "viewer")}
    t = factory.tenant(members=users, sites=2, devices=2)
    clients = {}
    for r, u in users.items():
        clients[r] = app.test_client()
        login(clients[r], u.email)
    roles = {"status": make_role(app, t["id"], "Status keeper", ["tenant:view", "devices:status"]),
             "settings": make_role(app, t["id"], "Settings keeper", ["tenant:view", "tenant:manage"]),
             "sites": make_role(app, t["id"], "Site planner", ["tenant:view", "sites:view", "sites:write"])}
    return {"t": t, "slug": t["slug"], "users": users, "c": clients, "roles": roles}


def test_carol_holds_viewer_and_field_technician_and_may_change_status_at_the_warehouse_only(app):
    c = app.test_client()
    login(c, "carol@acme.com", SEED_PASSWORD)
    dashboard = c.get(f"{ACME}/").get_data(as_text=True)
    assert "Viewer + Field technician" in dashboard
    devices = c.get(f"{ACME}/devices/", headers=HX).get_data(as_text=True)
    assert serials(devices) == {"ACME-CAM-0002", "ACME-MTR-0001", "ACME-ACT-0001", "ACME-BCN-0001"}
    camera = re.search(r'href="/t/acme-corp/devices/([0-9a-f-]{36})"[^<]*>Warehouse Dock Camera', devices).group(1)
    # Field technician adds devices:status; the camera is already in maintenance (shared sample data).
    assert post(c, f"{ACME}/devices/{camera}/status", HX, status="maintenance").status_code == 200
    # Nothing more: no device edits, no members, no settings.
    assert c.get(f"{ACME}/devices/new").status_code == 403
    assert post(c, f"{ACME}/devices/bulk", ids=[camera], action="move", site_id=camera).status_code == 403
    assert c.get(f"{ACME}/invitations/").status_code == 403
    assert c.get(f"{ACME}/roles/").status_code == 403
    assert c.get(f"{ACME}/settings/").status_code == 403
    assert "/further-roles" not in c.get(f"{ACME}/members/").get_data(as_text=True)
    # A Headquarters device is not hers to see, let alone change.
    with app.app_context():
        hq = db.session.execute(sa.text("SELECT id FROM devices WHERE serial_number = 'ACME-HVAC-0001'")).scalar()
    if hq is not None:  # read as the owner role in tests; under RLS it would be invisible
        assert post(c, f"{ACME}/devices/{hq}/status", HX, status="offline").status_code == 404
    assert "Viewer + Field technician" in c.get("/tenants").get_data(as_text=True)


def test_user_has_permission_answers_the_union_of_the_roles(app):
    """Seed 003's function, for the sample's role sets, as seed 003 calls it: with only the
    user set (app.user_id), under row-level security."""
    with app.app_context():
        people = dict(db.session.execute(sa.text("SELECT email, id FROM users WHERE email IN "
                                                 "('carol@acme.com', 'evan@healthcare.com', 'diana@healthcare.com')")).all())
        tenants = dict(db.session.execute(sa.text("SELECT slug, id FROM tenants WHERE slug IN "
                                                  "('acme-corp', 'healthcare-co')")).all())
    rows = {}
    for email, slug in (("carol@acme.com", "acme-corp"), ("evan@healthcare.com", "healthcare-co"),
                        ("diana@healthcare.com", "healthcare-co")):
        for code in ("devices:status", "devices:write", "devices:view", "agents:run"):
            with app.app_context(), user_scope(db.session, people[email]):
                rows[f"{email} {slug} {code}"] = db.session.scalar(
                    sa.text("SELECT user_has_permission(:u, :t, :r, :a)"),
                    {"u": people[email], "t": tenants[slug], "r": code.split(":")[0], "a": code.split(":")[1]})
    assert rows["carol@acme.com acme-corp devices:status"] is True       # Field technician
    assert rows["carol@acme.com acme-corp devices:view"] is True         # Viewer
    assert rows["carol@acme.com acme-corp devices:write"] is False       # neither
    assert rows["carol@acme.com acme-corp agents:run"] is False
    assert rows["evan@healthcare.com healthcare-co agents:run"] is True  # Agent operator (seed 003's agent_user)
    assert rows["evan@healthcare.com healthcare-co devices:write"] is False
    assert rows["evan@healthcare.com healthcare-co devices:status"] is False
    assert rows["diana@healthcare.com healthcare-co agents:run"] is True  # an admin


def test_owner_gives_and_takes_further_roles_on_the_members_page(app, team):
    slug, owner, viewer = team["slug"], team["c"]["owner"], team["users"]["viewer"]
    url = f"/t/{slug}/members/{viewer.id}/further-roles"
    page = owner.get(f"/t/{slug}/members/").get_data(as_text=True)
    assert f'action="{url}"' in page and "Status keeper" in page
    r = post(owner, url, HX, roles=[team["roles"]["status"], team["roles"]["sites"]])
    assert r.status_code == 200
    row = r.get_data(as_text=True)
    assert "+ Site planner + Status keeper" in row
    assert further_of(app, team["t"]["id"], viewer.id) == {team["roles"]["status"], team["roles"]["sites"]}
    # The viewer now holds the union: a site may be created, a device's status changed.
    v = team["c"]["viewer"]
    assert v.get(f"/t/{slug}/sites/new").status_code == 200
    assert "Viewer + Site planner + Status keeper" in v.get(f"/t/{slug}/").get_data(as_text=True)
    change = audit_rows(app, team["t"]["id"], "member.role_change")[-1]
    assert change.before.get("further_roles") is None
    assert change.after["further_roles"] == ["Site planner", "Status keeper"] and change.after["role"] == "viewer"
    # Unchecking every box takes them away; the base role stays.
    assert post(owner, url, HX).status_code == 200
    assert further_of(app, team["t"]["id"], viewer.id) == set()
    assert v.get(f"/t/{slug}/sites/new").status_code == 403
    assert v.get(f"/t/{slug}/devices/").status_code == 200


def test_nobody_gives_a_further_role_beyond_their_own_or_a_system_role(app, team):
    slug, admin, member = team["slug"], team["c"]["admin"], team["users"]["member"]
    url = f"/t/{slug}/members/{member.id}/further-roles"
    r = post(admin, url, HX, roles=[team["roles"]["settings"]])  # tenant:manage is an owner's
    assert r.status_code == 422
    assert "You cannot give the role Settings keeper" in r.get_data(as_text=True)
    assert further_of(app, team["t"]["id"], member.id) == set()
    r = post(admin, url, HX, roles=["admin"])
    assert r.status_code == 422 and "Further roles are custom roles" in r.get_data(as_text=True)
    assert post(admin, url, HX, roles=["not-a-role"]).status_code == 400
    assert post(admin, url, HX, roles=["00000000-0000-0000-0000-000000000000"]).status_code == 400
    # A member cannot give themselves more, and cannot reach the route at all.
    assert post(team["c"]["member"], url, HX, roles=[team["roles"]["status"]]).status_code == 403
    # The admin gives what they hold.
    assert post(admin, url, HX, roles=[team["roles"]["sites"]]).status_code == 200
    assert further_of(app, team["t"]["id"], member.id) == {team["roles"]["sites"]}


def test_an_admin_cannot_manage_someone_whose_roles_add_up_to_as_much_as_theirs(app, team):
    """may_manage compares the union: a member made Settings keeper by an owner holds tenant:manage."""
    slug, member = team["slug"], team["users"]["member"]
    assert post(team["c"]["owner"], f"/t/{slug}/members/{member.id}/further-roles", HX,
                roles=[team["roles"]["settings"]]).status_code == 200
    r = post(team["c"]["admin"], f"/t/{slug}/members/{member.id}/role", HX, role="viewer")
    assert r.status_code == 422 and "Only an owner can change members whose role" in r.get_data(as_text=True)


def test_invitation_gives_the_further_roles_on_acceptance_and_skips_a_deleted_one(mail_app, smtp, password_hash):
    f = Factory(mail_app, password_hash)
    owner_user = f.user(name="Olivia Owner")
    t = f.tenant(members={"owner": owner_user}, sites=1, devices=0)
    slug = t["slug"]
    keeper = make_role(mail_app, t["id"], "Status keeper", ["tenant:view", "devices:status"])
    planner = make_role(mail_app, t["id"], "Site planner", ["tenant:view", "sites:view", "sites:write"])
    owner = mail_app.test_client()
    login(owner, owner_user.email)
    email = f"new.{f._unique()}@example.com"  # unique: the worker's database outlives this test
    page = owner.get(f"/t/{slug}/invitations/").get_data(as_text=True)
    assert "Further roles (optional)" in page and "Status keeper" in page
    r = owner.post(f"/t/{slug}/invitations/", buffered=True, data={
        "csrf_token": csrf_token(owner), "emails": email, "role": "viewer",
        "further_roles": [keeper, planner]})
    assert r.status_code == 303
    assert "Viewer + Site planner + Status keeper" in owner.get(f"/t/{slug}/invitations/").get_data(as_text=True)
    # The site planner role goes before the invitation is accepted: the rest is given.
    assert post(owner, f"/t/{slug}/roles/{planner}/delete").status_code == 303
    [message] = smtp.inbox.wait_for(1, email)
    path = link_in(message, BASE)
    guest = mail_app.test_client()
    page = guest.get(path).get_data(as_text=True)
    done = guest.post(path, data={"action": "sign_up", "name": "New Person", "password": PASSWORD,
                                  "confirm": PASSWORD, "csrf_token": csrf_from(page)})
    assert done.status_code == 303
    with mail_app.app_context():
        invitee = db.session.scalar(sa.text("SELECT id FROM users WHERE email = :e"), {"e": email})
    assert further_of(mail_app, t["id"], invitee) == {keeper}
    assert "Viewer + Status keeper" in guest.get(f"/t/{slug}/").get_data(as_text=True)


def test_invitation_refuses_a_further_role_beyond_the_inviter(app, team):
    r = post(team["c"]["admin"], f"/t/{team['slug']}/invitations/", emails="x@example.com", role="viewer",
             further_roles=[team["roles"]["settings"]])
    assert r.status_code == 422
    assert "not a valid choice" in r.get_data(as_text=True) or "You cannot invite" in r.get_data(as_text=True)


def test_deleting_a_role_held_as_a_further_role_keeps_the_base_role_and_audits_it(app, team):
    slug, owner, member = team["slug"], team["c"]["owner"], team["users"]["member"]
    assert post(owner, f"/t/{slug}/members/{member.id}/further-roles", HX,
                roles=[team["roles"]["status"]]).status_code == 200
    assert post(owner, f"/t/{slug}/roles/{team['roles']['status']}/delete").status_code == 303
    assert further_of(app, team["t"]["id"], member.id) == set()
    change = audit_rows(app, team["t"]["id"], "member.role_change")[-1]
    assert change.reason == "role Status keeper deleted"
    assert change.before["further_roles"] == ["Status keeper"] and "further_roles" not in change.after
    assert change.after["role"] == "member"
    assert team["c"]["member"].get(f"/t/{slug}/devices/").status_code == 200


def test_a_later_transaction_of_the_request_keeps_the_permissions(app):
    """The write policies read app.permissions: a request that commits and goes on writing must
    still carry them (database.context re-sets them as each transaction begins)."""
    from portal.database.context import set_context
    from portal.tenancy.queries import enter_tenant
    with app.app_context():
        carol = db.session.scalar(sa.text("SELECT id FROM users WHERE email = 'carol@acme.com'"))
    with app.test_request_context():
        set_context(db.session, user_id=carol)
        entry = enter_tenant("acme-corp", carol)
        first = db.session.scalar(sa.text("SELECT current_setting('app.permissions', true)"))
        db.session.commit()
        later = db.session.scalar(sa.text("SELECT current_setting('app.permissions', true)"))
        db.session.rollback()
    codes = sorted(p.value for p in entry[2].permissions)
    assert first.split(",") == codes == later.split(",")
    assert "devices:status" in codes and "devices:write" not in codes
