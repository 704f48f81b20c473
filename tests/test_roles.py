"""Roles and permissions as data: the catalogue, custom roles, no escalation, and one answer
from Python and from SQL's user_has_permission()."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from uuid import UUID

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import SEED_PASSWORD, csrf_token, login
from portal.database.context import set_context, tenant_scope
from portal.extensions import db
from portal.invitations.models import Invitation
from portal.sites.models import SiteAssignment
from portal.tenancy.models import (Membership, MembershipRole, MembershipStatus, PermissionRecord,
                                   SystemRolePermission, TenantRole, TenantRolePermission, UserRole)
from portal.tenancy.permissions import CATALOGUE, SYSTEM_ROLES, Permission
from portal.tenancy.queries import enter_tenant
from portal.tenants.models import Tenant, TenantStatus
from test_workspace import HX, serials, statements, stats


def make_role(app, tenant_id, name, permissions) -> str:
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        row = TenantRole(tenant_id=tenant_id, name=name)
        db.session.add(row)
        db.session.flush()
        row.grants = [TenantRolePermission(tenant_id=tenant_id, role_id=row.id, permission=Permission(p).value)
                      for p in permissions]
        db.session.commit()
        return str(row.id)


def add_member(app, tenant_id, user, *, role: str | None = None, custom: str | None = None, sites=()):
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        db.session.add(Membership(tenant_id=tenant_id, user_id=user.id,
                                  role=MembershipRole(role) if role else None, custom_role_id=custom))
        db.session.flush()
        for site in sites:
            db.session.add(SiteAssignment(tenant_id=tenant_id, site_id=site, user_id=user.id))
        db.session.commit()


def role_of(app, tenant_id, user_id) -> tuple:
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        m = db.session.scalar(sa.select(Membership).where(Membership.tenant_id == tenant_id,
                                                          Membership.user_id == user_id))
        return (m.role.value if m.role else None, str(m.custom_role_id) if m.custom_role_id else None)


def post(client, url, **data):
    return client.post(url, data={"csrf_token": csrf_token(client), **data})


@pytest.fixture
def shop(app, factory):
    """An owner, an admin, a member and a viewer; two sites of two devices."""
    users = {r: factory.user(name=f"{r.title()} Person") for r in ("owner", "admin", "member", "viewer")}
    t = factory.tenant(members=users, sites=2, devices=2)
    clients = {}
    for r, u in users.items():
        clients[r] = app.test_client()
        login(clients[r], u.email)
    return {"t": t, "slug": t["slug"], "users": users, "c": clients, "factory": factory}


# --- The catalogue as data -----------------------------------------------------------------

def test_catalogue_and_system_roles_in_the_database_equal_the_code(app):
    """Fails on drift: a permission added to the enum needs a migration that adds its row."""
    with app.app_context():
        rows = db.session.scalars(sa.select(PermissionRecord).order_by(PermissionRecord.position)).all()
        assert [(r.name, r.resource, r.action, r.category, r.description) for r in rows] == \
            [(p.value, p.resource, p.action, p.category, p.description) for p in CATALOGUE]
        assert list(CATALOGUE) == list(Permission)
        granted = {}
        for row in db.session.scalars(sa.select(SystemRolePermission)):
            granted.setdefault(row.role, set()).add(row.permission)
        assert granted == {key: {p.value for p in held} for key, (_, _, held) in SYSTEM_ROLES.items()}
        names = dict(db.session.execute(sa.text("SELECT key::text, name FROM roles")).all())
        assert names == {key.value: name for key, (name, _, _) in SYSTEM_ROLES.items()}


def test_tenant_status_rules_are_the_same_in_python_and_sql(app):
    with app.app_context():
        for status in TenantStatus:
            usable, readable = db.session.execute(sa.text(
                "SELECT portal_tenant_usable(CAST(:s AS tenant_status)), portal_tenant_readable(CAST(:s AS tenant_status))"),
                {"s": status.value}).one()
            assert (usable, readable) == (Tenant(status=status).is_usable, Tenant(status=status).is_readable), status


# --- One answer in Python and in SQL (property test) ---------------------------------------

PERMISSIONS = list(Permission)


@st.composite
def worlds(draw):
    """Custom roles with random permission sets, and people holding random roles with random
    membership statuses, in a tenant of a random status."""
    custom = draw(st.lists(st.frozensets(st.sampled_from(PERMISSIONS)), min_size=0, max_size=3))
    choices = [("system", k) for k in MembershipRole] + [("custom", i) for i in range(len(custom))]
    # A base role, then further custom roles (role sets, issue 26).
    further = st.frozensets(st.sampled_from(range(len(custom)))) if custom else st.just(frozenset())
    people = draw(st.lists(st.tuples(st.sampled_from(choices), st.sampled_from(list(MembershipStatus)), further),
                           min_size=1, max_size=4))
    status = draw(st.sampled_from(list(TenantStatus)))
    return custom, people, status


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=worlds())
def test_user_has_permission_agrees_with_the_python_check(app, factory, world):
    custom, people, status = world
    t = factory.tenant(sites=0, status=status)
    role_ids = [make_role(app, t["id"], f"r{i}", held) for i, held in enumerate(custom)]
    members = []
    for (kind, which), member_status, further in people:
        user = factory.user()
        further = sorted(further - ({which} if kind == "custom" else set()))
        with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
            membership = Membership(tenant_id=t["id"], user_id=user.id, status=member_status,
                                    role=which if kind == "system" else None,
                                    custom_role_id=role_ids[which] if kind == "custom" else None)
            db.session.add(membership)
            db.session.flush()
            db.session.add_all(UserRole(tenant_id=t["id"], membership_id=membership.id, role_id=UUID(role_ids[i]))
                               for i in further)
            db.session.commit()
        expected = (SYSTEM_ROLES[which][2] if kind == "system" else custom[which]).union(*(custom[i] for i in further))
        members.append((user, member_status, expected))
    usable = status in (TenantStatus.ACTIVE, TenantStatus.PENDING)
    read_only = status in (TenantStatus.ARCHIVED, TenantStatus.PENDING_DELETION)
    for user, member_status, held in members:
        with app.test_request_context():
            # The request path: the user is loaded (app.user_id), then the tenant is entered.
            set_context(db.session, user_id=user.id)
            entry = enter_tenant(t["slug"], user.id)
            python = {p: entry is not None and p in entry[2].permissions for p in PERMISSIONS}
            sql = {p: db.session.scalar(sa.text("SELECT user_has_permission(:u, :t, :r, :a)"),
                                        {"u": user.id, "t": t["id"], "r": p.resource, "a": p.action})
                   for p in PERMISSIONS}
            db.session.rollback()
        model = {p: (usable or (read_only and p.reads)) and member_status == MembershipStatus.ACTIVE and p in held
                 for p in PERMISSIONS}
        assert python == model, (member_status, status)
        assert sql == model, (member_status, status)


def test_user_has_permission_answers_nothing_outside_the_callers_reach(app, db_urls, shop, factory):
    """SECURITY INVOKER: a caller in another tenant cannot probe who may do what here."""
    other = factory.tenant(members={"owner": factory.user()}, sites=0)
    engine = sa.create_engine(db_urls["app"], poolclass=sa.pool.NullPool)
    q = sa.text("SELECT user_has_permission(:u, :t, 'devices', 'write')")
    args = {"u": shop["users"]["owner"].id, "t": shop["t"]["id"]}
    with engine.begin() as conn:
        assert conn.execute(q, args).scalar() is False  # no context at all
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(other["id"])})
        assert conn.execute(q, args).scalar() is False  # another tenant's context
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(shop["t"]["id"])})
        assert conn.execute(q, args).scalar() is True
    engine.dispose()


# --- The roles page -------------------------------------------------------------------------

def test_owner_creates_edits_and_deletes_a_custom_role(app, shop):
    slug, owner = shop["slug"], shop["c"]["owner"]
    page = owner.get(f"/t/{slug}/roles/").get_data(as_text=True)
    for name in ("Owner", "Admin", "Member", "Viewer"):
        assert f'data-role="{name}"' in page
    assert "Change the status of devices they can see" in page  # in words, not codes
    assert "devices:status" not in page.replace('value="devices:status"', "")

    # Starting from an existing role fills the form with its permissions.
    start = owner.get(f"/t/{slug}/roles/new?from=member").get_data(as_text=True)
    assert 'value="Copy of Member"' in start and re.search(r'value="devices:status"\s+checked', start)

    r = post(owner, f"/t/{slug}/roles/new", name="Auditor", description="Reads the log",
             permissions=["audit:view", "devices:view"])
    assert r.status_code == 303
    with app.app_context(), tenant_scope(db.session, shop["t"]["id"], actor="test:setup"):
        role = db.session.scalar(sa.select(TenantRole).where(TenantRole.tenant_id == shop["t"]["id"]))
        assert role.name == "Auditor"
        assert {g.permission for g in role.grants} == {"audit:view", "devices:view", "tenant:view"}
        role_id = str(role.id)
    # Names are unique per tenant whatever the case, and built-in names are taken.
    for name in ("auditor", "ADMIN"):
        r = post(owner, f"/t/{slug}/roles/new", name=name, permissions=["devices:view"])
        assert r.status_code == 422 and ("already exists" in r.get_data(as_text=True)
                                         or "built-in role" in r.get_data(as_text=True))
    r = post(owner, f"/t/{slug}/roles/new", name="x" * 61, permissions=["devices:view"])
    assert r.status_code == 422 and "at most 60 characters" in r.get_data(as_text=True)
    r = post(owner, f"/t/{slug}/roles/new", name="Bogus", permissions=["devices:fly"])
    assert r.status_code == 422  # not in the catalogue

    r = post(owner, f"/t/{slug}/roles/{role_id}/edit", name="Auditor", description="",
             permissions=["audit:view"])
    assert r.status_code == 303
    assert owner.get(f"/t/{slug}/roles/owner/edit").status_code == 404  # built-in roles are read-only

    # Assign it, then delete it: the member moves to the role chosen, in the same step.
    member = shop["users"]["member"]
    assert post(owner, f"/t/{slug}/members/{member.id}/role", role=role_id).status_code == 303
    assert role_of(app, shop["t"]["id"], member.id) == (None, role_id)
    ask = owner.get(f"/t/{slug}/roles/{role_id}/delete").get_data(as_text=True)
    assert "1 member holds this role" in ask
    r = post(owner, f"/t/{slug}/roles/{role_id}/delete", fallback="viewer")
    assert r.status_code == 303
    assert role_of(app, shop["t"]["id"], member.id) == ("viewer", None)
    assert owner.get(f"/t/{slug}/roles/{role_id}/edit").status_code == 404
    with app.app_context(), tenant_scope(db.session, shop["t"]["id"], actor="test:setup"):
        actions = db.session.scalars(sa.text("SELECT action FROM audit_logs ORDER BY created_at")).all()
    assert ["role.create", "role.update", "member.role_change", "member.role_change", "role.delete"] == \
        [a for a in actions if a.startswith(("role.", "member.role"))]


def test_deleting_a_held_role_needs_somewhere_to_move_its_members(app, shop):
    slug, owner = shop["slug"], shop["c"]["owner"]
    role_id = make_role(app, shop["t"]["id"], "Temp", ["tenant:view"])
    extra = shop["factory"].user()
    add_member(app, shop["t"]["id"], extra, custom=role_id)
    r = post(owner, f"/t/{slug}/roles/{role_id}/delete", fallback=role_id)
    assert r.status_code == 422 and "Choose the role" in r.get_data(as_text=True)
    r = post(owner, f"/t/{slug}/roles/{role_id}/delete", fallback="no-such-role")
    assert r.status_code == 422
    assert role_of(app, shop["t"]["id"], extra.id) == (None, role_id)  # nothing changed


def test_invitation_for_a_deleted_role_falls_back_to_the_role_chosen(app, shop):
    slug, owner = shop["slug"], shop["c"]["owner"]
    role_id = make_role(app, shop["t"]["id"], "Contractor", ["tenant:view", "devices:view"])
    r = post(owner, f"/t/{slug}/invitations/", emails="contractor@example.com", role=role_id)
    assert r.status_code == 303
    listing = owner.get(f"/t/{slug}/invitations/").get_data(as_text=True)
    assert "contractor@example.com" in listing and "Contractor" in listing
    assert post(owner, f"/t/{slug}/roles/{role_id}/delete", fallback="member").status_code == 303
    with app.app_context(), tenant_scope(db.session, shop["t"]["id"], actor="test:setup"):
        inv = db.session.scalar(sa.select(Invitation).where(Invitation.tenant_id == shop["t"]["id"],
                                                            Invitation.email == "contractor@example.com"))
        assert (inv.role, inv.custom_role_id) == (MembershipRole.MEMBER, None)


# --- The matrix --------------------------------------------------------------------------------

class _Matrix(HTMLParser):
    """The roles matrix as a person reads it: column headers, and per row its header and cells
    (the cells' text, hidden words included, and their checkboxes)."""

    def __init__(self):
        super().__init__()
        self.columns, self.rows, self._cell, self._in = [], [], None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "matrix" in (attrs.get("class") or ""):
            self._in = True
        elif self._in and tag == "tr":
            self.rows.append([])
        elif self._in and tag in ("th", "td"):
            self._cell = {"tag": tag, "scope": attrs.get("scope"), "text": "", "inputs": []}
            self.rows[-1].append(self._cell)
        elif self._cell is not None and tag == "input":
            self._cell["inputs"].append(attrs)

    def handle_endtag(self, tag):
        if tag == "table":
            self._in = False
        elif tag in ("th", "td"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def table(self):
        head, *body = [r for r in self.rows if r]
        text = lambda c: " ".join(c["text"].split())
        columns = [text(c) for c in head[1:]]
        rows = {text(r[0]): r[1:] for r in body if r[0]["scope"] == "row"}
        groups = [text(r[0]) for r in body if r[0]["scope"] == "rowgroup"]
        return columns, rows, groups


def read_matrix(html: str):
    parser = _Matrix()
    parser.feed(html)
    return parser.table()


def test_the_roles_page_is_a_matrix_of_permissions_by_role(app, shop):
    slug, owner = shop["slug"], shop["c"]["owner"]
    make_role(app, shop["t"]["id"], "Auditor", ["tenant:view", "audit:view", "devices:view"])
    page = owner.get(f"/t/{slug}/roles/").get_data(as_text=True)
    columns, rows, groups = read_matrix(page)
    # Columns: the built-in roles, then the custom ones, each with its member count.
    assert [c.split(" ")[0] for c in columns] == ["Owner", "Admin", "Member", "Viewer", "Auditor"]
    assert columns[0] == "Owner 1 member" and columns[4] == "Auditor 0 members"
    assert groups[:4] == ["Organization", "Sites", "Devices", "Members"] and groups[-1] == "Ownership"
    system = [SYSTEM_ROLES[MembershipRole(k)][2] for k in ("owner", "admin", "member", "viewer")]
    granted = system + [frozenset({Permission.TENANT_VIEW, Permission.AUDIT_VIEW, Permission.DEVICES_VIEW})]
    for permission, (_, sentence) in CATALOGUE.items():
        # The sentence is the row's header; a cell shows a check and says "granted" to screen readers.
        cells = [(c["text"].strip().strip("✓·"), "✓" in c["text"]) for c in rows[sentence]]
        assert cells == [("granted", True) if permission in g else ("not granted", False) for g in granted], \
            permission
    assert ["granted" in c["text"] and "not" not in c["text"]
            for c in rows["Make others owners and hand ownership over (owners only)"]] == [True] + [False] * 4
    assert '<th scope="col"' in page and '<th scope="row"' in page and "<caption" in page
    assert "<input" not in page.split("matrix-caption")[1].split("</table>")[0]  # read-only here


def test_a_custom_role_is_edited_as_a_column_of_checkboxes(app, shop):
    slug, owner = shop["slug"], shop["c"]["owner"]
    role_id = make_role(app, shop["t"]["id"], "Auditor", ["tenant:view", "audit:view", "devices:view"])
    page = owner.get(f"/t/{slug}/roles/{role_id}/edit").get_data(as_text=True)
    columns, rows, _ = read_matrix(page)
    assert columns == ["Auditor (editing)", "Owner", "Admin", "Member", "Viewer"]  # the others, to compare
    for permission, (_, sentence) in CATALOGUE.items():
        editing, *others = rows[sentence]
        [box] = editing["inputs"]
        assert (box["id"], box["value"]) == (f"perm-{permission.value}", permission.value)
        assert ("checked" in box) == (permission in {Permission.TENANT_VIEW, Permission.AUDIT_VIEW,
                                                      Permission.DEVICES_VIEW})
        assert f'<label for="perm-{permission.value}">{sentence}</label>' in page.replace("&#39;", "'")
        assert not any(c["inputs"] for c in others)
    assert "disabled" in rows[CATALOGUE[Permission.TENANT_VIEW][1]][0]["inputs"][0]  # every role opens it

    # Ticking devices:status and unticking audit:view changes exactly those two, audited once.
    r = post(owner, f"/t/{slug}/roles/{role_id}/edit", name="Auditor", description="",
             permissions=["devices:view", "devices:status"])
    assert r.status_code == 303
    with app.app_context(), tenant_scope(db.session, shop["t"]["id"], actor="test:setup"):
        held = set(db.session.scalars(sa.select(TenantRolePermission.permission).where(
            TenantRolePermission.role_id == UUID(role_id))))
        audits = db.session.execute(sa.text(
            "SELECT action, before, after FROM audit_logs WHERE resource_id = :id ORDER BY seq"),
            {"id": role_id}).all()
    assert held == {"tenant:view", "devices:view", "devices:status"}
    [(action, before, after)] = audits
    assert action == "role.update"
    assert set(after["permissions"]) - set(before["permissions"]) == {"devices:status"}
    assert set(before["permissions"]) - set(after["permissions"]) == {"audit:view"}
    columns, rows, _ = read_matrix(owner.get(f"/t/{slug}/roles/").get_data(as_text=True))
    assert rows[CATALOGUE[Permission.DEVICES_STATUS][1]][4]["text"].strip() == "✓granted"
    assert rows[CATALOGUE[Permission.AUDIT_VIEW][1]][4]["text"].strip() == "·not granted"


# --- No escalation ---------------------------------------------------------------------------

@pytest.fixture
def delegate(app, shop):
    """A custom role that manages roles, members and invitations but cannot write devices."""
    held = ["tenant:view", "members:view", "members:manage", "invitations:manage", "roles:manage",
            "sites:view", "devices:view", "tasks:view"]  # all a viewer holds (issue 14 gave viewers tasks:view)
    role_id = make_role(app, shop["t"]["id"], "People manager", held)
    user = shop["factory"].user(name="Dee Legate")
    add_member(app, shop["t"]["id"], user, custom=role_id)
    client = app.test_client()
    login(client, user.email)
    return {"role_id": role_id, "user": user, "c": client}


def test_nobody_creates_or_edits_a_role_beyond_their_own(app, shop, delegate):
    slug, c = shop["slug"], delegate["c"]
    form = c.get(f"/t/{slug}/roles/new").get_data(as_text=True)
    assert re.search(r'value="devices:write"\s+disabled', form)  # shown, not offered
    r = post(c, f"/t/{slug}/roles/new", name="Sneaky", permissions=["devices:view", "devices:write"])
    assert r.status_code == 422 and "your own role does not allow" in r.get_data(as_text=True)
    r = post(c, f"/t/{slug}/roles/new", name="Helper", permissions=["devices:view"])
    assert r.status_code == 303
    # A role made by an owner with more than the delegate holds: not theirs to edit or delete.
    strong = make_role(app, shop["t"]["id"], "Strong", ["tenant:view", "devices:write"])
    r = post(c, f"/t/{slug}/roles/{strong}/edit", name="Strong", permissions=["devices:view"])
    assert r.status_code == 422 and "only an owner can change it" in r.get_data(as_text=True)
    r = post(c, f"/t/{slug}/roles/{strong}/delete", fallback="viewer")
    assert r.status_code == 422
    # Nor may they edit their own role upwards (forged POST).
    r = post(c, f"/t/{slug}/roles/{delegate['role_id']}/edit", name="People manager",
             permissions=["members:manage", "roles:manage", "sites:write"])
    assert r.status_code == 422
    with app.app_context(), tenant_scope(db.session, shop["t"]["id"], actor="test:setup"):
        held = set(db.session.scalars(sa.select(TenantRolePermission.permission).where(
            TenantRolePermission.role_id == UUID(delegate["role_id"]))))
    assert "sites:write" not in held


def test_nobody_gives_a_role_with_more_than_their_own(app, shop, delegate):
    slug, c = shop["slug"], delegate["c"]
    viewer = shop["users"]["viewer"]
    # Forged POSTs: admin (more than the delegate holds), owner, and another tenant's role.
    for role in ("admin", "owner"):
        r = c.post(f"/t/{slug}/members/{viewer.id}/role", headers=HX,
                   data={"csrf_token": csrf_token(c), "role": role})
        assert r.status_code == 422, role
    foreign = make_role(app, shop["factory"].tenant(sites=0)["id"], "Foreign", ["tenant:view"])
    r = post(c, f"/t/{slug}/members/{viewer.id}/role", role=foreign)
    assert r.status_code == 400
    assert role_of(app, shop["t"]["id"], viewer.id) == ("viewer", None)
    # An admin's role holds more than the delegate's: the delegate cannot change them at all.
    r = c.post(f"/t/{slug}/members/{shop['users']['admin'].id}/role", headers=HX,
               data={"csrf_token": csrf_token(c), "role": "viewer"})
    assert r.status_code == 422
    # Within their reach: a viewer (whose role holds less than theirs) gets a role they hold all of.
    helper = make_role(app, shop["t"]["id"], "Reader", ["tenant:view", "devices:view"])
    assert post(c, f"/t/{slug}/members/{viewer.id}/role", role=helper).status_code == 303
    assert role_of(app, shop["t"]["id"], viewer.id) == (None, helper)
    # Invitations follow the same rule.
    r = post(c, f"/t/{slug}/invitations/", emails="someone@example.com", role="admin")
    assert r.status_code == 422
    page = c.get(f"/t/{slug}/invitations/").get_data(as_text=True)
    options = re.findall(r'<option[^>]*value="([^"]+)"', page)
    assert "admin" not in options and "owner" not in options and helper in options


def test_only_owners_grant_or_take_the_owner_role(app, shop):
    slug, admin = shop["slug"], shop["c"]["admin"]
    member = shop["users"]["member"]
    r = admin.post(f"/t/{slug}/members/{member.id}/role", headers=HX,
                   data={"csrf_token": csrf_token(admin), "role": "owner"})
    assert r.status_code == 422 and "Only an owner can make someone an owner." in r.get_data(as_text=True)
    r = admin.post(f"/t/{slug}/members/{shop['users']['owner'].id}/role", headers=HX,
                   data={"csrf_token": csrf_token(admin), "role": "viewer"})
    assert r.status_code == 422
    assert post(shop["c"]["owner"], f"/t/{slug}/members/{member.id}/role", role="owner").status_code == 303
    assert role_of(app, shop["t"]["id"], member.id) == ("owner", None)


# --- A custom role is honoured everywhere ----------------------------------------------------

def test_field_technician_sample_role_everywhere(app):
    """The sample data's Tom holds Acme's custom "Field technician" role at Acme Warehouse."""
    c = app.test_client()
    login(c, "tom@acme.com", SEED_PASSWORD)
    dashboard = c.get("/t/acme-corp/").get_data(as_text=True)
    assert "Field technician" in dashboard
    assert stats(dashboard)["sites"] == 1
    nav = re.search(r'<nav class="side-nav" .*?</nav>', dashboard, re.S).group(0)
    assert "Devices" in nav and "Members" not in nav and "Roles" not in nav
    devices = c.get("/t/acme-corp/devices/", headers=HX).get_data(as_text=True)
    assert serials(devices) == {"ACME-CAM-0002", "ACME-MTR-0001", "ACME-ACT-0001", "ACME-BCN-0001"}
    export = c.get("/t/acme-corp/devices/export.csv").get_data(as_text=True)
    assert "Acme Warehouse" in export and "Acme Headquarters" not in export
    assert c.get("/t/acme-corp/members/").status_code == 403
    assert c.get("/t/acme-corp/roles/").status_code == 403
    assert c.get("/t/acme-corp/devices/new").status_code == 403
    # The dock camera is already in maintenance: setting it again exercises the permission
    # without changing the shared sample data.
    device = re.search(r'href="/t/acme-corp/devices/([0-9a-f-]{36})"[^<]*>Warehouse Dock Camera', devices).group(1)
    r = c.post(f"/t/acme-corp/devices/{device}/status", headers=HX,
               data={"csrf_token": csrf_token(c), "status": "maintenance"})
    assert r.status_code == 200
    r = c.post("/t/acme-corp/devices/bulk", data={"csrf_token": csrf_token(c), "ids": [device],
                                                  "action": "status", "status": "maintenance"})
    assert r.status_code == 303
    r = c.post("/t/acme-corp/devices/bulk", data={"csrf_token": csrf_token(c), "ids": [device],
                                                  "action": "move", "site_id": device})
    assert r.status_code == 403  # moving needs devices:write
    # Two statements per list request, as for the built-in roles.
    with statements(app) as seen:
        assert c.get("/t/acme-corp/devices/", headers=HX).status_code == 200
    assert len(seen) == 2, seen
    switcher = c.get("/tenants").get_data(as_text=True)
    assert "Field technician" in switcher


def test_site_visibility_follows_the_permission_not_the_role_name(app, shop):
    """A custom role with sites:see-all sees every site without any assignment."""
    slug = shop["slug"]
    role_id = make_role(app, shop["t"]["id"], "Inspector", ["tenant:view", "sites:view", "sites:see-all",
                                                             "devices:view"])
    user = shop["factory"].user()
    add_member(app, shop["t"]["id"], user, custom=role_id)
    c = app.test_client()
    login(c, user.email)
    assert len(serials(c.get(f"/t/{slug}/devices/", headers=HX).get_data(as_text=True))) == 4
    assert c.get(f"/t/{slug}/sites/{shop['t']['sites'][1]}").status_code == 200
    site_page = shop["c"]["owner"].get(f"/t/{slug}/sites/{shop['t']['sites'][0]}").get_data(as_text=True)
    row = re.search(rf'<tr data-email="{re.escape(user.email)}">.*?</tr>', site_page, re.S).group(0)
    assert "Inspector" in row and "sees every site" in row
