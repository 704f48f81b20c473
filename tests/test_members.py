"""Members: roles, suspension, removal, ownership transfer, leaving, and the last-owner rule."""
from __future__ import annotations

import re
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from conftest import csrf_token, login
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.tenancy.models import Membership, MembershipRole


@pytest.fixture
def org(app, factory):
    users = {name: factory.user(name=f"{name.title()} Person", email=f"{name}-{factory._unique()}@example.com")
             for name in ("owner", "admin", "member", "viewer")}
    tenant = factory.tenant(members=users, sites=1, devices=0)
    return {"tenant": tenant, "users": users, "factory": factory}


def memberships(app, tenant_id) -> dict:
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        return {m.user_id: (m.role.value, m.status.value) for m in db.session.scalars(
            sa.select(Membership).where(Membership.tenant_id == tenant_id))}


def audit_actions(app, tenant_id) -> list[str]:
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        return db.session.scalars(sa.text("SELECT action FROM audit_logs ORDER BY created_at")).all()


def act(client, slug, user_id, action, htmx=False, **data):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(f"/t/{slug}/members/{user_id}/{action}", data={"csrf_token": csrf_token(client), **data},
                       headers=headers)


def test_list_search_and_read_only_for_viewers(app, org):
    slug = org["tenant"]["slug"]
    viewer = app.test_client()
    login(viewer, org["users"]["viewer"].email)
    page = viewer.get(f"/t/{slug}/members/").get_data(as_text=True)
    for u in org["users"].values():
        assert f'data-email="{u.email}"' in page
    assert "<select" not in page and "Suspend" not in page  # read-only
    found = viewer.get(f"/t/{slug}/members/?q=ADMIN PERSON", headers={"HX-Request": "true", "HX-Target": "member-table"})
    html = found.get_data(as_text=True)
    assert "<html" not in html and org["users"]["admin"].email in html and org["users"]["member"].email not in html
    none = viewer.get(f"/t/{slug}/members/?q=zzz-nobody").get_data(as_text=True)
    assert "No member matches" in none


def test_owner_changes_roles_inline_with_audit(app, org):
    t, users = org["tenant"], org["users"]
    owner = app.test_client()
    login(owner, users["owner"].email)
    r = act(owner, t["slug"], users["member"].id, "role", htmx=True, role="admin")
    assert r.status_code == 200 and "<tr" in r.get_data(as_text=True) and "<html" not in r.get_data(as_text=True)
    assert memberships(app, t["id"])[users["member"].id] == ("admin", "active")
    assert "member.role_change" in audit_actions(app, t["id"])


def test_admin_limits(app, org):
    t, users = org["tenant"], org["users"]
    admin = app.test_client()
    login(admin, users["admin"].email)
    r = act(admin, t["slug"], users["member"].id, "role", htmx=True, role="owner")
    assert r.status_code == 422 and "Only an owner can make someone an owner." in r.get_data(as_text=True)
    r = act(admin, t["slug"], users["owner"].id, "suspend", htmx=True)
    assert r.status_code == 422 and "Only an owner can change an owner." in r.get_data(as_text=True)
    assert act(admin, t["slug"], users["viewer"].id, "role", role="member").status_code == 303
    assert memberships(app, t["id"])[users["viewer"].id] == ("member", "active")
    assert memberships(app, t["id"])[users["owner"].id] == ("owner", "active")


def test_last_owner_cannot_be_demoted_suspended_removed_or_leave(app, org):
    t, users = org["tenant"], org["users"]
    owner = app.test_client()
    login(owner, users["owner"].email)
    # An admin promoted to owner, then demoting the original owner is fine; the last one is protected.
    r = act(owner, t["slug"], users["owner"].id, "role", htmx=True, role="admin")
    assert r.status_code == 422 and "at least one active owner" in r.get_data(as_text=True)
    r = owner.post(f"/t/{t['slug']}/members/leave", data={"csrf_token": csrf_token(owner)})
    assert "You are the last owner" in owner.get(r.headers["Location"]).get_data(as_text=True)
    assert memberships(app, t["id"])[users["owner"].id] == ("owner", "active")
    # The database refuses too, whatever the application does.
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        db.session.execute(sa.update(Membership).where(Membership.tenant_id == t["id"]).values(status="suspended"))
        with pytest.raises(DBAPIError, match="must keep at least one active owner"):
            db.session.commit()
        db.session.rollback()


def test_concurrent_demotions_cannot_leave_zero_owners(app, org, db_urls):
    """Two owners demote each other at the same moment, straight in the database."""
    t, users = org["tenant"], org["users"]
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        db.session.execute(sa.update(Membership).where(Membership.tenant_id == t["id"],
                                                       Membership.user_id == users["admin"].id).values(role="owner"))
        db.session.commit()
    engine = sa.create_engine(db_urls["app"], poolclass=sa.pool.NullPool)
    barrier, outcomes = threading.Barrier(2), []

    def demote(user_id):
        try:
            with engine.begin() as conn:
                # Two owners: members:manage, as their requests would have it (migration 0027).
                conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true), "
                                     "set_config('app.permissions', 'members:manage', true)"), {"t": str(t["id"])})
                conn.execute(sa.text("UPDATE user_tenant_associations SET role = 'member' WHERE tenant_id = :t "
                                     "AND user_id = :u"), {"t": t["id"], "u": user_id})
                barrier.wait()  # both updates done, neither committed
            outcomes.append("committed")
        except DBAPIError as exc:
            outcomes.append("refused" if "at least one active owner" in str(exc) else repr(exc))

    threads = [threading.Thread(target=demote, args=(u.id,)) for u in (users["owner"], users["admin"])]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    engine.dispose()
    assert sorted(outcomes) == ["committed", "refused"]
    roles = memberships(app, t["id"])
    assert sum(1 for role, status in roles.values() if role == "owner" and status == "active") == 1


def test_concurrent_demotions_through_the_portal(app, org):
    t, users = org["tenant"], org["users"]
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        db.session.execute(sa.update(Membership).where(Membership.tenant_id == t["id"],
                                                       Membership.user_id == users["admin"].id).values(role="owner"))
        db.session.commit()
    a, b = app.test_client(), app.test_client()
    login(a, users["owner"].email)
    login(b, users["admin"].email)
    ta, tb = csrf_token(a), csrf_token(b)
    barrier, codes, bodies = threading.Barrier(2), [], []

    def run(client, token, target):
        barrier.wait()
        r = client.post(f"/t/{t['slug']}/members/{target}/role", data={"role": "member", "csrf_token": token},
                        headers={"HX-Request": "true"})
        codes.append(r.status_code)
        bodies.append(r.get_data(as_text=True)[:300])

    threads = [threading.Thread(target=run, args=(a, ta, users["admin"].id)),
               threading.Thread(target=run, args=(b, tb, users["owner"].id))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(codes) in ([200, 404], [200, 422]), bodies  # the loser was refused (404: it lost access first)
    roles = memberships(app, t["id"])
    assert sum(1 for role, status in roles.values() if role == "owner" and status == "active") == 1


def test_suspended_or_removed_member_loses_access_on_the_next_request(app, org):
    t, users = org["tenant"], org["users"]
    member, owner = app.test_client(), app.test_client()
    login(member, users["member"].email)
    login(owner, users["owner"].email)
    assert member.get(f"/t/{t['slug']}/").status_code == 200
    assert act(owner, t["slug"], users["member"].id, "suspend").status_code == 303
    assert member.get(f"/t/{t['slug']}/").status_code == 404
    assert act(owner, t["slug"], users["member"].id, "reactivate").status_code == 303
    assert member.get(f"/t/{t['slug']}/").status_code == 200
    r = act(owner, t["slug"], users["member"].id, "remove", htmx=True)
    assert r.status_code == 200 and r.get_data(as_text=True) == ""
    assert member.get(f"/t/{t['slug']}/").status_code == 404
    assert users["member"].id not in memberships(app, t["id"])
    actions = audit_actions(app, t["id"])
    for a in ("member.suspend", "member.reactivate", "member.remove"):
        assert a in actions


def test_ownership_transfer_is_one_action(app, org):
    t, users = org["tenant"], org["users"]
    owner = app.test_client()
    login(owner, users["owner"].email)
    r = act(owner, t["slug"], users["viewer"].id, "transfer")
    assert r.status_code == 303
    roles = memberships(app, t["id"])
    assert roles[users["viewer"].id] == ("owner", "active") and roles[users["owner"].id] == ("admin", "active")
    assert "member.transfer_ownership" in audit_actions(app, t["id"])
    # Now an admin, the former owner can no longer transfer.
    r = act(owner, t["slug"], users["member"].id, "transfer")
    assert "Only an owner can transfer ownership." in owner.get(r.headers["Location"]).get_data(as_text=True)


def test_member_leaves(app, org):
    t, users = org["tenant"], org["users"]
    member = app.test_client()
    login(member, users["member"].email)
    r = member.post(f"/t/{t['slug']}/members/leave", data={"csrf_token": csrf_token(member)})
    assert r.status_code == 303
    assert member.get(f"/t/{t['slug']}/").status_code == 404
    assert "member.leave" in audit_actions(app, t["id"])


def test_last_active_is_recorded(app, org):
    t, users = org["tenant"], org["users"]
    viewer = app.test_client()
    login(viewer, users["viewer"].email)
    assert viewer.get(f"/t/{t['slug']}/").status_code == 200
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        seen = db.session.scalar(sa.select(Membership.last_active_at).where(
            Membership.tenant_id == t["id"], Membership.user_id == users["viewer"].id))
    assert seen is not None


def test_assign_sites_from_the_member_row(app, org):
    t, users = org["tenant"], org["users"]
    owner, viewer = app.test_client(), app.test_client()
    login(owner, users["owner"].email)
    login(viewer, users["viewer"].email)
    page = owner.get(f"/t/{t['slug']}/members/").get_data(as_text=True)
    assert f'id="member-sites-{users["member"].id}"' in page and 'aria-checked="false"' in page
    site_id = t["sites"][0]
    r = owner.post(f"/t/{t['slug']}/sites/{site_id}/assignments", headers={"HX-Request": "true"},
                   data={"user_id": users["member"].id, "fragment": "member", "next": f"/t/{t['slug']}/members/",
                         "csrf_token": csrf_token(owner)})
    assert r.status_code == 200 and 'aria-checked="true"' in r.get_data(as_text=True)
    # A viewer without sites:see-all reads only the sites they are assigned to (the database's
    # site scope, migration 0027): another site's name is not theirs to read, here either.
    listing = viewer.get(f"/t/{t['slug']}/members/").get_data(as_text=True)
    assert f"Site 0 {t['slug']}" not in listing and "member-sites-" not in listing
    owner.post(f"/t/{t['slug']}/sites/{site_id}/assignments",
               data={"user_id": users["viewer"].id, "csrf_token": csrf_token(owner)})
    listing = viewer.get(f"/t/{t['slug']}/members/").get_data(as_text=True)
    assert f"Site 0 {t['slug']}" in listing and "member-sites-" not in listing  # read-only names


def test_members_pages_forward_and_back_with_their_position(app, factory):
    """55 members: the first page says "1–50 of 55", Next shows "51–55 of 55", Previous
    comes back to the same first page."""
    owner = factory.user(name="Paging Owner", email=f"aaa-owner-{factory._unique()}@example.com")
    others = {f"m{i}": factory.user(name=f"Paging {i:02d}") for i in range(54)}
    t = factory.tenant(members={"owner": owner}, sites=0, devices=0)
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        for user in others.values():
            db.session.add(Membership(tenant_id=t["id"], user_id=user.id, role=MembershipRole.VIEWER))
        db.session.commit()
    client = app.test_client()
    login(client, owner.email)
    first = client.get(f"/t/{t['slug']}/members/").get_data(as_text=True)
    assert "1–50 of 55" in first and 'rel="prev"' not in first
    nxt = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(nxt, headers={"HX-Request": "true", "HX-Target": "member-table"}).get_data(as_text=True)
    assert "51–55 of 55" in second and 'rel="next"' not in second and "<html" not in second
    prev = re.search(r'rel="prev" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    again = client.get(prev).get_data(as_text=True)
    assert re.findall(r'data-email="([^"]+)"', again) == re.findall(r'data-email="([^"]+)"', first)
    assert client.get(f"/t/{t['slug']}/members/?before=%%%&after=").status_code == 200
