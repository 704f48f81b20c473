"""Tasks (issue 14): visibility, the assignee and device-of-site rules, limits on bad input, safe
text, status and comments, the list and board, bulk actions, my tasks across organizations, the
site and device panels, and whom each event concerns (events.py)."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from conftest import Factory, csrf_token, login
from sqlalchemy.exc import IntegrityError

from portal.database.context import tenant_scope, user_scope
from portal.extensions import db
from portal.jobs.engine import bind
from portal.notifications.models import Notification
from portal.sites import services as site_services
from portal.sites.models import Site, SiteAssignment
from portal.tasks import events, services
from portal.tasks.jobs import due_scan, scan_tenant
from portal.tasks.models import Task, TaskComment, TaskPriority, TaskStatus
from portal.tenancy import context_for
from portal.tenancy.models import (
    Membership,
    MembershipRole,
    MembershipStatus,
    TenantRole,
    TenantRolePermission,
)
from portal.tenants.models import Tenant

HX = {"HX-Request": "true"}


@pytest.fixture(scope="module")
def people(app, password_hash):
    """The module's people, each signed in once (argon2id per sign-in is most of a test's time)."""
    factory = Factory(app, password_hash)
    users = {r: factory.user(name=f"{r.title()} Tasker") for r in ("owner", "admin", "member", "viewer", "other")}
    return {"u": users, "clients": {}}


@pytest.fixture
def shop(app, factory, people):
    """A fresh tenant: owner, admin, a member and a viewer at site 0, another member at site 1;
    two devices per site."""
    people_ = people["u"]
    t = factory.tenant(members={r: people_[r] for r in ("owner", "admin", "member", "viewer")}, sites=2, devices=2)
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        db.session.add(Membership(tenant_id=t["id"], user_id=people_["other"].id, role=MembershipRole.MEMBER))
        db.session.flush()
        for who, site in (("member", 0), ("viewer", 0), ("other", 1)):
            db.session.add(SiteAssignment(tenant_id=t["id"], site_id=t["sites"][site], user_id=people_[who].id))
        db.session.commit()
    return {"t": t, "slug": t["slug"], "u": people_, "app": app, "clients": people["clients"]}


class As:
    """Services as one member of the shop, in a transaction of its own (committed on success)."""

    def __init__(self, shop, who):
        self.shop, self.who = shop, who

    def __enter__(self):
        self.app_ctx = self.shop["app"].app_context()
        self.app_ctx.push()
        tid = self.shop["t"]["id"]
        self.scope = tenant_scope(db.session, tid, actor="test:setup")
        self.scope.__enter__()
        tenant = db.session.get(Tenant, tid)
        m = db.session.scalar(sa.select(Membership).where(Membership.tenant_id == tid,
                                                          Membership.user_id == self.shop["u"][self.who].id))
        return context_for(tenant, m)

    def __exit__(self, kind, *rest):
        if kind is None:
            db.session.commit()
        else:
            db.session.rollback()
        self.scope.__exit__(None)
        self.app_ctx.pop()


def new_task(shop, who="owner", **fields) -> UUID:
    with As(shop, who) as ctx:
        return services.create_task(ctx, services.TaskData(**{"title": "A task", **fields})).id


def client_of(shop, who):
    clients = shop["clients"]
    if who not in clients:
        clients[who] = shop["app"].test_client()
        login(clients[who], shop["u"][who].email)
    return clients[who]


def titles(html: str) -> set[str]:
    return set(re.findall(r'<td class="name"><a href="[^"]+">([^<]+)</a>', html))


def test_visibility_follows_sites_and_ones_own(shop):
    s0, s1 = shop["t"]["sites"]
    u = shop["u"]
    at0 = new_task(shop, title="At site zero", site_id=s0)
    at1 = new_task(shop, title="At site one", site_id=s1, assignee_id=u["other"].id)
    anywhere = new_task(shop, title="No site at all")
    mine = new_task(shop, title="Site one but mine", site_id=s1)
    with As(shop, "owner") as ctx:  # the owner gives it to the member, who sees site 0 only: refused
        task = db.session.get(Task, (ctx.tenant_id, mine))
        with pytest.raises(services.RuleViolation, match="cannot see"):
            services.assign(ctx, [task], u["member"].id)
    member = client_of(shop, "member")
    listed = titles(member.get(f"/t/{shop['slug']}/tasks/", headers=HX).get_data(as_text=True))
    assert listed == {"At site zero", "No site at all"}
    assert member.get(f"/t/{shop['slug']}/tasks/{at1}").status_code == 404
    assert member.get(f"/t/{shop['slug']}/tasks/{at0}").status_code == 200
    other = client_of(shop, "other")
    listed = titles(other.get(f"/t/{shop['slug']}/tasks/?status=all", headers=HX).get_data(as_text=True))
    assert listed == {"At site one", "No site at all", "Site one but mine"}
    # Created by the member at their site, then the site is taken away: still theirs to see.
    own = new_task(shop, "member", title="Made by the member", site_id=s0)
    with As(shop, "owner") as ctx:
        site_services.unassign_user_from_site(ctx, db.session.get(Site, (ctx.tenant_id, s0)), u["member"].id)
    assert member.get(f"/t/{shop['slug']}/tasks/{own}").status_code == 200
    assert member.get(f"/t/{shop['slug']}/tasks/{at0}").status_code == 404
    assert member.get(f"/t/{shop['slug']}/tasks/{anywhere}").status_code == 200


def test_the_assignee_must_see_the_site_and_may_work(shop):
    s0, s1 = shop["t"]["sites"]
    u = shop["u"]
    with As(shop, "owner") as ctx, pytest.raises(services.RuleViolation, match="Member Tasker cannot see Site 1"):
        services.create_task(ctx, services.TaskData("x", site_id=s1, assignee_id=u["member"].id))
    with As(shop, "owner") as ctx, pytest.raises(services.RuleViolation, match="does not allow working on tasks"):
        services.create_task(ctx, services.TaskData("x", site_id=s0, assignee_id=u["viewer"].id))
    with As(shop, "owner") as ctx, pytest.raises(services.RuleViolation, match="Only active members"):
        services.create_task(ctx, services.TaskData("x", assignee_id=UUID(int=1)))
    # Through the form: the message is on the field, nothing is written.
    owner = client_of(shop, "owner")
    r = owner.post(f"/t/{shop['slug']}/tasks/new", data={"csrf_token": csrf_token(owner), "title": "Camera",
                                                        "priority": "high", "site_id": str(s1),
                                                        "assignee_id": str(u["member"].id)})
    assert r.status_code == 422
    assert "Member Tasker cannot see Site 1" in r.get_data(as_text=True)
    # Assigned at site 0, then the member loses site 0: the task says so.
    task_id = new_task(shop, title="Replace the lobby camera", site_id=s0, assignee_id=u["member"].id)
    with As(shop, "owner") as ctx:
        site_services.unassign_user_from_site(ctx, db.session.get(Site, (ctx.tenant_id, s0)), u["member"].id)
    page = owner.get(f"/t/{shop['slug']}/tasks/{task_id}").get_data(as_text=True)
    assert "The assignee can no longer see this site" in page
    # ...and the member still sees the task assigned to them.
    assert client_of(shop, "member").get(f"/t/{shop['slug']}/tasks/{task_id}").status_code == 200


def test_the_device_is_one_of_the_tasks_site(shop, db_urls):
    s0, s1 = shop["t"]["sites"]
    d_at_1 = shop["t"]["devices"][2]
    with As(shop, "owner") as ctx, pytest.raises(services.RuleViolation, match="not at Site 0"):
        services.create_task(ctx, services.TaskData("x", site_id=s0, device_id=d_at_1))
    with As(shop, "owner") as ctx, pytest.raises(services.RuleViolation, match="site too"):
        services.create_task(ctx, services.TaskData("x", device_id=d_at_1))
    ok = new_task(shop, title="At a device", site_id=s1, device_id=d_at_1)
    # The database refuses it too, whatever the code does.
    with pytest.raises(IntegrityError, match="fk_tasks_tenant_id_site_id_device_id_devices"), As(shop, "owner") as ctx:
        db.session.execute(sa.update(Task).where(Task.tenant_id == ctx.tenant_id, Task.id == ok)
                           .values(site_id=s0))
        db.session.flush()
    with pytest.raises(IntegrityError, match="ck_tasks_completed_when_done"), As(shop, "owner") as ctx:
        db.session.execute(sa.update(Task).where(Task.tenant_id == ctx.tenant_id, Task.id == ok)
                           .values(status=TaskStatus.DONE))
        db.session.flush()


def test_a_member_creates_tasks_only_at_sites_they_see(shop):
    s0, s1 = shop["t"]["sites"]
    member = client_of(shop, "member")
    token = csrf_token(member)
    r = member.post(f"/t/{shop['slug']}/tasks/new", data={"csrf_token": token, "title": "Elsewhere",
                                                         "priority": "low", "site_id": str(s1)})
    assert r.status_code == 422 and "Choose one of your sites" in r.get_data(as_text=True)
    r = member.post(f"/t/{shop['slug']}/tasks/new", data={"csrf_token": token, "title": "Here",
                                                         "priority": "low", "site_id": str(s0)})
    assert r.status_code == 303
    r = member.post(f"/t/{shop['slug']}/tasks/new", data={"csrf_token": token, "title": "Nowhere", "priority": "low"})
    assert r.status_code == 303
    viewer = client_of(shop, "viewer")
    assert viewer.post(f"/t/{shop['slug']}/tasks/new",
                       data={"csrf_token": csrf_token(viewer), "title": "x"}).status_code == 403


BAD = [
    ({"title": ""}, "Give the task a title"),
    ({"title": "   "}, "Give the task a title"),
    ({"title": "x" * 201}, "200"),
    ({"description": "y" * 10_001}, "10000"),
    ({"due_on": "1900-01-01"}, "between 2000 and 2100"),
    ({"due_on": "not-a-date"}, "Not a valid date value"),
    ({"priority": "whenever"}, "Not a valid choice"),
    ({"site_id": "not-a-uuid"}, "Choose one of the options"),
    ({"assignee_id": "00000000-0000-0000-0000-000000000001"}, "Only active members"),
]


def test_bad_input_is_refused_with_a_message_and_writes_nothing(shop):
    owner = client_of(shop, "owner")
    token = csrf_token(owner)
    for fields, message in BAD:
        data = {"csrf_token": token, "title": "Fine", "priority": "medium", **fields}
        r = owner.post(f"/t/{shop['slug']}/tasks/new", data=data)
        assert r.status_code == 422, fields
        assert message in r.get_data(as_text=True), (fields, message)
    with As(shop, "owner") as ctx:
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(Task.tenant_id == ctx.tenant_id)) == 0
    # Malformed list parameters are ignored, never an error.
    r = owner.get(f"/t/{shop['slug']}/tasks/?status=nope&priority=x&site=zz&sort=';--&after=%%%&q=" + "a" * 500)
    assert r.status_code == 200
    assert owner.get(f"/t/{shop['slug']}/tasks/?before=bm90LWpzb24").status_code == 200
    assert owner.get(f"/t/{shop['slug']}/tasks/?q=%27%3A*%20%26%20!").status_code == 200


def test_text_is_shown_safely_with_links(shop):
    evil = ('<script>alert("d")</script> see https://example.com/a?b=1&c=2 and '
            'javascript:alert(1) "><img src=x onerror=alert(2)> http://x.test/"onmouseover="alert(3)')
    task_id = new_task(shop, title='<b>Bold</b> title', description=evil)
    owner = client_of(shop, "owner")
    r = owner.post(f"/t/{shop['slug']}/tasks/{task_id}/comments",
                   data={"csrf_token": csrf_token(owner), "body": "<img src=x onerror=alert(4)> https://ok.example.com/x."})
    assert r.status_code == 303
    html = owner.get(f"/t/{shop['slug']}/tasks/{task_id}").get_data(as_text=True)
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>Bold</b>" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=alert(4)&gt;" in html
    assert '<a href="https://example.com/a?b=1&amp;c=2" rel="nofollow noopener noreferrer"' in html
    assert '<a href="https://ok.example.com/x" rel="nofollow noopener noreferrer" target="_blank">' in html
    assert 'href="javascript:' not in html
    assert "onmouseover=" not in re.sub(r"&#34;onmouseover=&#34;", "", html.split("<h2>Description</h2>")[1])
    assert '<a href="http://x.test/" rel' in html


def test_status_and_comments_are_for_the_assignee_or_editors(shop, app):
    s0 = shop["t"]["sites"][0]
    u = shop["u"]
    theirs = new_task(shop, title="Theirs", site_id=s0, assignee_id=u["member"].id)
    nobodys = new_task(shop, title="Nobody's", site_id=s0)
    # A custom role that may only work on tasks (and see them): its own tasks only.
    with As(shop, "owner") as ctx:
        role = TenantRole(tenant_id=ctx.tenant_id, name="Worker only")
        db.session.add(role)
        db.session.flush()
        role.grants = [TenantRolePermission(tenant_id=ctx.tenant_id, role_id=role.id, permission=p)
                       for p in ("tenant:view", "tasks:view", "tasks:work")]
        db.session.execute(sa.update(Membership).where(Membership.tenant_id == ctx.tenant_id,
                                                       Membership.user_id == u["member"].id)
                           .values(role=None, custom_role_id=role.id))
    member = client_of(shop, "member")
    token = csrf_token(member)
    base = f"/t/{shop['slug']}/tasks"
    r = member.post(f"{base}/{nobodys}/status", data={"csrf_token": token, "status": "done"})
    assert r.status_code == 303
    assert "only of tasks assigned to you" in member.get(f"{base}/{nobodys}").get_data(as_text=True)
    r = member.post(f"{base}/{theirs}/status", data={"csrf_token": token, "status": "done"}, headers=HX)
    assert r.status_code == 200 and "task-changed" in r.headers["HX-Trigger"]
    r = member.post(f"{base}/{nobodys}/comments", data={"csrf_token": token, "body": "me too"})
    assert r.status_code == 422 and "only on tasks assigned to you" in r.get_data(as_text=True)
    r = member.post(f"{base}/{theirs}/comments", data={"csrf_token": token, "body": "  "})
    assert r.status_code == 422
    r = member.post(f"{base}/{theirs}/comments", data={"csrf_token": token, "body": "z" * 5001})
    assert r.status_code == 422
    assert member.post(f"{base}/{theirs}/comments", data={"csrf_token": token, "body": "Done it."}).status_code == 303
    with As(shop, "owner") as ctx:
        task = db.session.get(Task, (ctx.tenant_id, theirs))
        assert task.status == TaskStatus.DONE and task.completed_at is not None
        services.change_status(ctx, [task], TaskStatus.IN_PROGRESS)
        assert task.completed_at is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(TaskComment)
                                 .where(TaskComment.tenant_id == ctx.tenant_id, TaskComment.task_id == theirs)) == 1
    page = member.get(f"{base}/{theirs}").get_data(as_text=True)
    history = page.split('id="task-history"')[1]
    for line in ("Owner Tasker changed the status from done to in progress", "Member Tasker commented",
                 "Member Tasker changed the status from open to done", "Owner Tasker created the task"):
        assert line in history


def test_list_filters_sort_pages_count_and_search(shop, monkeypatch):
    monkeypatch.setattr("portal.tasks.queries.PAGE_SIZE", 5)
    s0, s1 = shop["t"]["sites"]
    u = shop["u"]
    today = date.today()
    with As(shop, "owner") as ctx:
        for i in range(11):
            services.create_task(ctx, services.TaskData(
                f"Routine check {i:02d}", priority=list(TaskPriority)[i % 4], due_on=today + timedelta(days=i - 3),
                site_id=s0 if i % 2 else s1, assignee_id=u["member"].id if i % 2 else None))
        services.create_task(ctx, services.TaskData("Replace the lobby camera", priority=TaskPriority.URGENT,
                                                    site_id=s0))
    owner = client_of(shop, "owner")
    base = f"/t/{shop['slug']}/tasks/"
    page1 = owner.get(base, headers=HX)
    assert page1.headers["HX-Push-Url"] == base
    html = page1.get_data(as_text=True)
    assert sorted(titles(html)) == [f"Routine check {i:02d}" for i in range(5)]
    assert html.count('class="overdue"') == 3  # due 1 to 3 days ago
    pages = [html]
    while (nxt := re.search(r'rel="next" href="([^"]+)"', pages[-1])):
        pages.append(owner.get(nxt.group(1).replace("&amp;", "&"), headers=HX).get_data(as_text=True))
    assert [len(titles(p)) for p in pages] == [5, 5, 2]
    assert "Replace the lobby camera" in pages[-1]  # no due date: last
    prev = re.search(r'rel="prev" href="([^"]+)"', pages[-1]).group(1).replace("&amp;", "&")
    assert titles(owner.get(prev, headers=HX).get_data(as_text=True)) == titles(pages[1])
    count = re.search(r'hx-get="([^"]+/count[^"]+)"', pages[-1]).group(1).replace("&amp;", "&")
    assert owner.get(count).get_data(as_text=True).strip().endswith("11–12 of 12</span>")
    assert titles(owner.get(base + "?overdue=1", headers=HX).get_data(as_text=True)) == {
        f"Routine check {i:02d}" for i in range(3)}
    assert titles(owner.get(base + "?q=lobby+cam", headers=HX).get_data(as_text=True)) == {"Replace the lobby camera"}
    assert titles(owner.get(base + "?q=rout+03", headers=HX).get_data(as_text=True)) == {"Routine check 03"}
    assert titles(owner.get(base + "?mine=1", headers=HX).get_data(as_text=True)) == set()
    member_mine = titles(client_of(shop, "member").get(base + "?mine=1&site=" + str(s0), headers=HX)
                         .get_data(as_text=True))
    assert member_mine == {"Routine check 01", "Routine check 03", "Routine check 05", "Routine check 07",
                           "Routine check 09"}
    urgent = owner.get(base + "?sort=priority&priority=urgent", headers=HX).get_data(as_text=True)
    assert re.findall(r'<td class="name"><a href="[^"]+">([^<]+)</a>', urgent) == [
        "Routine check 03", "Routine check 07", "Replace the lobby camera"]
    by_priority = re.findall(r"badge priority-(\w+)", owner.get(base + "?sort=priority", headers=HX)
                             .get_data(as_text=True))
    assert by_priority == ["urgent"] * 3 + ["high"] * 2
    week = titles(owner.get(base + "?week=1&status=all", headers=HX).get_data(as_text=True))
    monday = today - timedelta(days=today.weekday())
    in_week = [f"Routine check {i:02d}" for i in range(11)
               if monday <= today + timedelta(days=i - 3) <= monday + timedelta(days=6)]
    assert week == set(in_week[:5])  # the first page, by due date
    full = owner.get(base + "?status=all&q=routine").get_data(as_text=True)
    assert 'value="routine"' in full and "<h1>Tasks</h1>" in full


def test_board_moves_a_card_with_and_without_javascript(shop):
    task_id = new_task(shop, title="Move me", site_id=shop["t"]["sites"][0])
    owner = client_of(shop, "owner")
    token = csrf_token(owner)
    base = f"/t/{shop['slug']}/tasks"

    def column_of(html):
        return re.search(rf'data-status="(\w+)"(?:(?!data-status).)*id="card-{task_id}"', html, re.DOTALL).group(1)

    assert column_of(owner.get(f"{base}/board").get_data(as_text=True)) == "open"
    r = owner.post(f"{base}/{task_id}/status", data={"csrf_token": token, "status": "blocked",
                                                     "next": f"{base}/board?priority=medium"})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"{base}/board?priority=medium")
    assert column_of(owner.get(f"{base}/board?priority=medium").get_data(as_text=True)) == "blocked"
    r = owner.post(f"{base}/{task_id}/status", data={"csrf_token": token, "status": "in_progress",
                                                     "next": "https://evil.example.com/"}, headers=HX)
    assert r.status_code == 200 and "task-changed" in r.headers["HX-Trigger"]
    fragment = owner.get(f"{base}/board", headers=HX).get_data(as_text=True)
    assert fragment.startswith('\n<div id="task-board"') or fragment.lstrip().startswith('<div id="task-board"')
    assert column_of(fragment) == "in_progress"
    r = owner.post(f"{base}/{task_id}/status", data={"csrf_token": token, "status": "done",
                                                     "next": "https://evil.example.com/"})
    assert r.headers["Location"].endswith(f"{base}/{task_id}")


def test_bulk_assign_and_status_are_all_or_nothing(shop):
    s0, s1 = shop["t"]["sites"]
    u = shop["u"]
    a, b = new_task(shop, title="A", site_id=s0), new_task(shop, title="B", site_id=s1)
    owner = client_of(shop, "owner")
    token = csrf_token(owner)
    base = f"/t/{shop['slug']}/tasks"
    r = owner.post(f"{base}/bulk/assign", data={"csrf_token": token, "ids": [str(a), str(b)],
                                                "assignee_id": str(u["member"].id), "next": f"{base}/?mine=1"})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"{base}/?mine=1")
    page = owner.get(f"{base}/").get_data(as_text=True)
    assert "cannot see Site 1" in page and "Nothing was changed" in page
    r = owner.post(f"{base}/bulk/assign", data={"csrf_token": token, "ids": [str(a)], "assignee_id": str(u["member"].id)})
    assert "Assigned 1 task." in owner.get(f"{base}/").get_data(as_text=True)
    r = owner.post(f"{base}/bulk/status", data={"csrf_token": token, "ids": [str(a), str(b)], "status": "cancelled"})
    assert r.status_code == 303
    with As(shop, "owner") as ctx:
        rows = dict(db.session.execute(sa.select(Task.title, Task.status).where(Task.tenant_id == ctx.tenant_id)).all())
        assignee = db.session.scalar(sa.select(Task.assignee_id).where(Task.tenant_id == ctx.tenant_id, Task.id == a))
    assert rows == {"A": TaskStatus.CANCELLED, "B": TaskStatus.CANCELLED} and assignee == u["member"].id
    # The member may set the status of their own task only; another's in the selection refuses all.
    member = client_of(shop, "member")
    r = member.post(f"{base}/bulk/status", data={"csrf_token": csrf_token(member), "ids": [str(a)], "status": "open"})
    assert r.status_code == 303
    c = new_task(shop, title="C", site_id=s0)
    r = member.post(f"{base}/bulk/status", data={"csrf_token": csrf_token(member), "ids": [str(a), str(c)],
                                                 "status": "done"})
    assert r.status_code == 303  # members hold tasks:write by default: both change
    assert owner.post(f"{base}/bulk/status", data={"csrf_token": token, "ids": ["nope"], "status": "done"}).status_code == 400
    assert owner.post(f"{base}/bulk/status", data={"csrf_token": token, "ids": [str(a)] * 201}).status_code == 303


def test_my_tasks_across_organizations(app, factory, shop):
    u = shop["u"]
    mine_here = new_task(shop, title="Mine in the shop", assignee_id=u["member"].id,
                         due_on=date.today() - timedelta(days=2))
    new_task(shop, title="Somebody else's", assignee_id=u["other"].id)
    done = new_task(shop, title="Mine but done", assignee_id=u["member"].id)
    with As(shop, "owner") as ctx:
        services.change_status(ctx, [db.session.get(Task, (ctx.tenant_id, done))], TaskStatus.DONE)
    elsewhere = factory.tenant(name="Elsewhere Org", members={"owner": u["owner"], "member": u["member"]},
                               sites=0)
    other_shop = {**shop, "t": elsewhere}
    new_task(other_shop, title="Mine elsewhere", assignee_id=u["member"].id)
    member = client_of(shop, "member")
    html = member.get("/tasks").get_data(as_text=True)
    assert "Mine in the shop" in html and "Mine elsewhere" in html and "Elsewhere Org" in html
    assert "Somebody else's" not in html and "Mine but done" not in html
    assert f'href="/t/{shop["slug"]}/tasks/{mine_here}"' in html
    assert html.index("Elsewhere Org") < html.index(f"Tenant {shop['slug']}")  # grouped, by name
    assert re.search(r'class="overdue"><a[^>]*>Mine in the shop', html)
    # The function answers for the transaction's user only: nobody set, nothing.
    with app.app_context():
        assert db.session.execute(sa.text("SELECT count(*) FROM portal_my_tasks(100)")).scalar() == 0


def test_site_and_device_pages_show_open_tasks(shop):
    s0 = shop["t"]["sites"][0]
    d0 = shop["t"]["devices"][0]
    new_task(shop, title="Fix the door", site_id=s0)
    new_task(shop, title="Reboot the sensor", site_id=s0, device_id=d0)
    owner = client_of(shop, "owner")
    site = owner.get(f"/t/{shop['slug']}/sites/{s0}").get_data(as_text=True)
    assert "Fix the door" in site and "Reboot the sensor" in site
    assert f'href="/t/{shop["slug"]}/tasks/new?site={s0}"' in site
    device = owner.get(f"/t/{shop['slug']}/devices/{d0}").get_data(as_text=True)
    assert "Reboot the sensor" in device and "Fix the door" not in device
    assert f'/tasks/new?site={s0}&amp;device={d0}"' in device
    form = owner.get(f"/t/{shop['slug']}/tasks/new?site={s0}&device={d0}").get_data(as_text=True)
    assert f'<option selected value="{s0}">' in form and f'selected value="{d0}">' in form
    # A site with tasks (and no devices) is archived, not deleted.
    with As(shop, "owner") as ctx:
        empty = site_services.create_site(ctx, site_services.SiteData(name="Empty site")).id
    new_task(shop, title="Survey the new site", site_id=empty)
    with pytest.raises(services.RuleViolation, match="has 1 task: archive the site instead"), As(shop, "owner") as ctx:
        site_services.delete_site(ctx, db.session.get(Site, (ctx.tenant_id, empty)))


def test_events_name_the_people_concerned(shop):
    s0 = shop["t"]["sites"][0]
    u = shop["u"]
    with As(shop, "member") as ctx:
        task = services.create_task(ctx, services.TaskData("Ours", site_id=s0, assignee_id=u["member"].id))
        assert events.task_assigned(ctx.tenant, task, ctx.user_id) is None  # assigned to oneself
        task_id = task.id
    with As(shop, "owner") as ctx:
        task = db.session.get(Task, (ctx.tenant_id, task_id))
        services.update_task(ctx, task, services.TaskData("Ours", site_id=s0, assignee_id=u["admin"].id))
        notice = events.task_assigned(ctx.tenant, task, ctx.user_id)
        assert notice.recipients == [u["admin"].id] and notice.kind == "task.assigned"
        assert notice.params["actor"] == "Owner Tasker" and notice.link == f"/t/{shop['slug']}/tasks/{task.id}"
        comment = services.add_comment(ctx, task, "Please look")
        notice = events.task_commented(ctx.tenant, task, comment, ctx.user_id)
        assert notice.recipients == [u["admin"].id, u["member"].id]  # the assignee, the creator; not the owner
        assert notice.params["excerpt"] == "Please look"
        assert events.task_completed(ctx.tenant, task, u["member"].id) is None  # the creator closed it
        notice = events.task_completed(ctx.tenant, task, u["admin"].id)
        assert notice.recipients == [u["member"].id] and notice.kind == "task.completed"
        # A member who left is told nothing.
        db.session.execute(sa.update(Membership).where(Membership.tenant_id == ctx.tenant_id,
                                                       Membership.user_id == u["member"].id)
                           .values(status=MembershipStatus.SUSPENDED))
        assert events.task_completed(ctx.tenant, task, u["admin"].id) is None
        db.session.rollback()


def test_the_daily_scan_tells_once_per_task_in_the_sites_calendar(shop):
    s0, s1 = shop["t"]["sites"]
    u = shop["u"]
    with As(shop, "owner") as ctx:  # two calendars a day apart: Kiritimati (UTC+14) and Pago Pago (UTC-11)
        db.session.get(Site, (ctx.tenant_id, s0)).timezone = "Pacific/Kiritimati"
        db.session.get(Site, (ctx.tenant_id, s1)).timezone = "Pacific/Pago_Pago"
    east = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    west = datetime.now(ZoneInfo("Pacific/Pago_Pago")).date()
    soon = new_task(shop, title="Due tomorrow east", site_id=s0, due_on=east + timedelta(days=1),
                    assignee_id=u["member"].id)
    late = new_task(shop, title="Overdue west", site_id=s1, due_on=west - timedelta(days=1))
    new_task(shop, title="Due today west", site_id=s1, due_on=west)
    new_task(shop, title="Overdue but done", due_on=date(2020, 1, 1))
    with As(shop, "owner") as ctx:
        done = db.session.scalar(sa.select(Task).where(Task.tenant_id == ctx.tenant_id, Task.title == "Overdue but done"))
        services.change_status(ctx, [done], TaskStatus.DONE)
    with As(shop, "owner") as ctx:
        notices = {(n.kind, n.params["title"]): n for n in scan_tenant(ctx.tenant)}
    assert set(notices) == {("task.due_tomorrow", "Due tomorrow east"), ("task.overdue", "Overdue west")}
    assert notices["task.due_tomorrow", "Due tomorrow east"].recipients == [u["member"].id]
    assert notices["task.overdue", "Overdue west"].recipients == [u["owner"].id]  # unassigned: its creator
    assert notices["task.overdue", "Overdue west"].params["days_late"] == 1
    with As(shop, "owner") as ctx:
        assert scan_tenant(ctx.tenant) == []  # once per task
        task = db.session.get(Task, (ctx.tenant_id, late))
        task.due_on = west - timedelta(days=3)  # a new date: told again
        assert soon
    with As(shop, "owner") as ctx:
        assert [n.params["title"] for n in scan_tenant(ctx.tenant)] == ["Overdue west"]
    # The periodic job runs the same scan over every usable tenant, one transaction each.
    bind(shop["app"])
    assert due_scan(timestamp=0) >= 0
    with As(shop, "owner") as ctx:
        assert scan_tenant(ctx.tenant) == []


def test_tasks_without_a_site_follow_the_organizations_time_zone(shop):
    east = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()  # UTC+14: always a day ahead of UTC-11
    task_id = new_task(shop, title="Pay the invoice", due_on=east - timedelta(days=1))
    owner = client_of(shop, "owner")
    token = csrf_token(owner)
    url = f"/t/{shop['slug']}/settings/general"
    r = owner.post(url, data={"csrf_token": token, "name": "Shop", "timezone": "Mars/Olympus"})
    assert r.status_code == 422 and "Mars/Olympus is not a known IANA time zone" in r.get_data(as_text=True)
    assert owner.post(url, data={"csrf_token": token, "name": "Shop", "timezone": "Pacific/Pago_Pago"}).status_code == 303
    page = owner.get(f"/t/{shop['slug']}/tasks/{task_id}").get_data(as_text=True)
    assert "Pacific/Pago_Pago, the organization’s time zone" in page
    west_today = datetime.now(ZoneInfo("Pacific/Pago_Pago")).date()
    assert ("overdue</strong>" in page) == (east - timedelta(days=1) < west_today)
    assert owner.post(url, data={"csrf_token": token, "name": "Shop", "timezone": "Pacific/Kiritimati"}).status_code == 303
    assert "overdue</strong>" in owner.get(f"/t/{shop['slug']}/tasks/{task_id}").get_data(as_text=True)


def notified(shop, who) -> list[tuple[str, str]]:
    """The notification rows `who` reads for the shop's tenant: (kind, task title), oldest first."""
    user_id = shop["u"][who].id
    with shop["app"].app_context(), user_scope(db.session, user_id):
        rows = db.session.execute(sa.select(Notification.kind, Notification.params).where(
            Notification.about_tenant_id == shop["t"]["id"]).order_by(Notification.created_at, Notification.id)).all()
        return [(kind, params["title"]) for kind, params in rows]


def test_task_events_write_notification_rows_for_the_people_concerned(shop):
    """The wiring of the two halves: the services' events become rows in the right bells
    (through events.publish and notify), never in the actor's, and the daily scan's once per task."""
    s0 = shop["t"]["sites"][0]
    u = shop["u"]
    with As(shop, "owner") as ctx:
        db.session.get(Site, (ctx.tenant_id, s0)).timezone = "UTC"
    today = datetime.now(ZoneInfo("UTC")).date()
    fix = new_task(shop, title="Fix the door", site_id=s0, assignee_id=u["member"].id)  # owner assigns member
    new_task(shop, title="Mine alone", assignee_id=u["owner"].id)  # assigned to oneself: nobody told
    assert notified(shop, "member") == [("task_assigned", "Fix the door")]
    assert notified(shop, "owner") == []
    with As(shop, "member") as ctx:  # the assignee comments: the creator is told
        services.add_comment(ctx, db.session.get(Task, (ctx.tenant_id, fix)), "On it")
    with As(shop, "admin") as ctx:  # a third person comments: assignee and creator
        services.add_comment(ctx, db.session.get(Task, (ctx.tenant_id, fix)), "Thanks")
    assert notified(shop, "owner") == [("task_commented", "Fix the door")] * 2
    assert notified(shop, "member") == [("task_assigned", "Fix the door"), ("task_commented", "Fix the door")]
    assert notified(shop, "admin") == []
    with As(shop, "member") as ctx:  # the assignee closes it: the creator is told
        services.change_status(ctx, [db.session.get(Task, (ctx.tenant_id, fix))], TaskStatus.DONE)
    assert notified(shop, "owner")[-1] == ("task_completed", "Fix the door")
    assert [k for k, _ in notified(shop, "member")] == ["task_assigned", "task_commented"]

    new_task(shop, title="Due tomorrow", site_id=s0, due_on=today + timedelta(days=1), assignee_id=u["member"].id)
    new_task(shop, title="Late", site_id=s0, due_on=today - timedelta(days=2))  # unassigned: its creator
    before = {who: len(notified(shop, who)) for who in ("owner", "member")}
    bind(shop["app"])
    for _ in range(2):  # the periodic job, twice: one notification per task
        assert due_scan(timestamp=0) >= 0
    assert notified(shop, "member")[before["member"]:] == [("task_due_tomorrow", "Due tomorrow")]
    assert notified(shop, "owner")[before["owner"]:] == [("task_overdue", "Late")]
    assert notified(shop, "admin") == [] and notified(shop, "viewer") == []
