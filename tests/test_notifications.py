"""Notifications: one statement per fan-out, each user's own rows under RLS, preferences,
unsubscribe tokens, emails with RFC 8058 headers, the bell, marking read, and the wired events."""
from __future__ import annotations

import re
import time
import uuid
from datetime import date
from mailbox import SmtpServer

import pytest
import sqlalchemy as sa
from conftest import Factory, csrf_token, login, make_app
from test_jobs import quiet_queue  # noqa: F401 (fixture)

from portal.accounts.models import User
from portal.database.context import tenant_scope, user_scope
from portal.extensions import db
from portal.notifications import Kind, notify
from portal.notifications.kinds import message
from portal.notifications.models import Notification, NotificationPreference
from portal.notifications.services import unsubscribe_token
from portal.tenancy.models import Membership, MembershipRole

BASE = "https://portal.example.com"


def run_worker(db_urls, **config):
    import asyncio
    import threading

    from portal.jobs.worker import run_async
    worker_app = make_app(db_urls, **config)
    burst = threading.Thread(target=lambda: asyncio.run(run_async(worker_app, concurrency=1, wait=False,
                                                                  install_signal_handlers=False)))
    burst.start()
    burst.join(60)


def mine(app, user_id) -> list[Notification]:
    with app.app_context(), user_scope(db.session, user_id):
        rows = db.session.scalars(sa.select(Notification).order_by(Notification.created_at)).all()
        db.session.expunge_all()
        return rows


def send(app, tenant_id, recipients, kind=Kind.SITE_ASSIGNED, params=None, link="/account") -> int:
    with app.test_request_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        emailed = notify(tenant_id, recipients, kind, params or {"actor": "Ann", "site": "HQ", "tenant": "T"}, link)
        db.session.commit()
        return emailed


def prefer(app, user_id, kind: Kind, channel: str):
    with app.app_context(), user_scope(db.session, user_id):
        db.session.add(NotificationPreference(user_id=user_id, kind=kind.value, channel=channel))
        db.session.commit()


def test_fan_out_to_500_members_is_one_statement(app, factory):
    t = factory.tenant(sites=0)
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        ids = [uuid.uuid4() for _ in range(500)]
        db.session.execute(sa.insert(User), [{"id": i, "email": f"fan-{i}@example.com", "name": "Fan"} for i in ids])
        db.session.execute(sa.insert(Membership), [{"tenant_id": t["id"], "user_id": i, "role": MembershipRole.MEMBER}
                                                   for i in ids])
        db.session.commit()
    statements = []
    with app.test_request_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        listener = lambda *args: statements.append(args[2])
        sa.event.listen(db.engine, "before_cursor_execute", listener)
        try:
            members = sa.select(Membership.user_id).where(Membership.tenant_id == t["id"])
            emailed = notify(t["id"], members, Kind.DEVICE_ERROR, {"device": "Cam", "site": "HQ", "tenant": "T"}, None)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", listener)
        db.session.rollback()
    # One statement writes the 500 rows and names who is emailed; one more queues their email job.
    assert emailed == 500
    assert len(statements) <= 2 and sum("portal_notify" in s for s in statements) == 1, statements


def test_a_user_reads_only_their_own_even_in_the_same_tenant(app, factory):
    ann, bob = factory.user(), factory.user()
    t = factory.tenant(members={"owner": ann, "member": bob}, sites=0)
    send(app, t["id"], [ann.id])
    assert len(mine(app, ann.id)) == 1
    assert mine(app, bob.id) == []
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):  # a tenant but no user: nothing
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(NotificationPreference)) == 0
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"), user_scope(db.session, bob.id):
        # Same tenant, another user: RLS hides the row, an update cannot reach it.
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 0
        assert db.session.execute(sa.update(Notification).values(read_at=sa.func.now())).rowcount == 0
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):  # only portal_notify writes rows
            db.session.execute(sa.insert(Notification).values(user_id=bob.id, kind="role_changed"))
        db.session.rollback()
    bob_client = app.test_client()
    login(bob_client, bob.email)
    other = mine(app, ann.id)[0].id
    r = bob_client.post(f"/notifications/{other}/read", data={"csrf_token": csrf_token(bob_client)})
    assert r.status_code == 404 and mine(app, ann.id)[0].read_at is None


def test_outsiders_and_other_tenants_are_not_notified(app, factory):
    ann, stranger = factory.user(), factory.user()
    t = factory.tenant(members={"owner": ann}, sites=0)
    other = factory.tenant(members={"owner": stranger}, sites=0)
    send(app, t["id"], [ann.id, stranger.id])
    assert mine(app, stranger.id) == [] and len(mine(app, ann.id)) == 1
    with pytest.raises(sa.exc.DBAPIError):  # a tenant's notification outside that tenant's context
        _outside(app, other["id"], stranger.id)


def _outside(app, tenant_id, user_id):
    with app.test_request_context():
        try:
            notify(tenant_id, [user_id], Kind.SITE_ASSIGNED, {}, None)
        finally:
            db.session.rollback()


def test_preferences_are_honoured_and_security_cannot_be_turned_off(app, factory):
    off, email_only, portal_only, default = (factory.user() for _ in range(4))
    t = factory.tenant(members={"owner": off, "admin": email_only, "member": portal_only, "viewer": default}, sites=0)
    prefer(app, off.id, Kind.DEVICE_ERROR, "none")
    prefer(app, email_only.id, Kind.DEVICE_ERROR, "email")
    prefer(app, portal_only.id, Kind.DEVICE_ERROR, "portal")
    prefer(app, off.id, Kind.SIGNIN_NEW_BROWSER, "none")
    emailed = send(app, t["id"], [off.id, email_only.id, portal_only.id, default.id], Kind.DEVICE_ERROR)
    assert emailed == 2  # email_only and default (device errors default to both)
    assert [len(mine(app, u.id)) for u in (off, email_only, portal_only, default)] == [0, 0, 1, 1]
    assert send(app, None, [off.id], Kind.SIGNIN_NEW_BROWSER, {"browser": "X", "ip": "1"}) == 1
    assert mine(app, off.id) == []  # emailed, never in the bell (issue 22)
    # The tasks area's names ("task.overdue") are the same kinds; a date is kept as it prints.
    send(app, t["id"], [portal_only.id], "task.overdue", {"title": "Fix", "tenant": "T", "due_on": date(2026, 12, 1)})
    assert "“Fix” in T is overdue (due 2026-12-01)" == message("task_overdue", mine(app, portal_only.id)[-1].params)


def test_unsubscribe_tokens(app, factory):
    ann = factory.user()
    with app.app_context():
        valid = unsubscribe_token(ann.id, Kind.DEVICE_ERROR)
        forged = unsubscribe_token(ann.id, Kind.SIGNIN_NEW_BROWSER)  # security: not a kind one can leave
    c = app.test_client()
    page = c.get(f"/notifications/unsubscribe/{valid}")
    assert page.status_code == 200 and "Stop emails for" in page.get_data(as_text=True)
    assert c.get(f"/notifications/unsubscribe/{valid[:-2]}xx").status_code == 404  # tampered
    assert c.post(f"/notifications/unsubscribe/{forged}").status_code == 404
    # A POST without sign-in or CSRF token (RFC 8058): only that kind changes.
    assert c.post(f"/notifications/unsubscribe/{valid}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with app.app_context(), user_scope(db.session, ann.id):
        assert dict(db.session.execute(sa.select(NotificationPreference.kind, NotificationPreference.channel)).all()) \
            == {"device_error": "portal"}


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


def test_bell_count_mark_read_and_all(app, factory):
    ann = factory.user()
    t = factory.tenant(members={"owner": ann}, sites=0)
    for _ in range(3):
        send(app, t["id"], [ann.id])
    c = app.test_client()
    login(c, ann.email)
    c.get("/notifications/count")  # the session's once-a-minute touch happens outside the measure
    statements = []
    listener = lambda *args: statements.append(args[2])
    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        count = c.get("/notifications/count", headers={"HX-Request": "true"}).get_data(as_text=True)
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert 'hx-trigger="every 30s' in count and ">3<" in count
    # The poll: the session context every request makes, and one count of the unread index.
    assert len(statements) == 2 and "portal_request_context" in statements[0] and "notifications" in statements[1]
    first = mine(app, ann.id)[0].id
    r = c.post(f"/notifications/{first}/read", headers={"HX-Request": "true", "X-CSRFToken": csrf_token(c)})
    assert r.status_code == 200 and "Marked as read" in r.headers["HX-Trigger"]
    assert ">2<" in c.get("/notifications/count").get_data(as_text=True)
    assert c.post(f"/notifications/{first}/read").status_code == 400  # no CSRF token
    page = c.get("/notifications/").get_data(as_text=True)
    assert page.count("Mark read</button>") == 2 and "gave you access to the site HQ" in page
    second = [n for n in mine(app, ann.id) if n.read_at is None][0]
    opened = c.get(f"/notifications/{second.id}/open")  # following the link reads it
    assert opened.status_code == 303 and opened.headers["Location"] == (second.link or "/notifications/")
    assert ">1<" in c.get("/notifications/count").get_data(as_text=True)
    r = c.post("/notifications/read-all", data={"csrf_token": csrf_token(c)})  # the form, without JavaScript
    assert r.status_code == 303
    assert "bell-none" in c.get("/notifications/count").get_data(as_text=True)
    assert "gave you access" in c.get("/notifications/latest").get_data(as_text=True)
    c.post("/logout", data={"csrf_token": csrf_token(c)})
    ended = c.get("/notifications/count", headers={"HX-Request": "true"})  # a page left open
    assert ended.status_code == 200 and "hx-trigger" not in ended.get_data(as_text=True)


def test_preferences_form_on_account(app, factory):
    ann = factory.user()
    c = app.test_client()
    login(c, ann.email)
    page = c.get("/account/notifications").get_data(as_text=True)
    assert "A device at your sites reports an error" in page and "always (security)" in page
    r = c.post("/notifications/preferences", data={"csrf_token": csrf_token(c), "device_error": "digest",
                                                   **{k.value: "both" for k in Kind if k not in
                                                      (Kind.DEVICE_ERROR, Kind.SIGNIN_NEW_BROWSER)}})
    assert r.status_code == 303
    with app.app_context(), user_scope(db.session, ann.id):
        assert db.session.scalar(sa.select(NotificationPreference.channel).where(
            NotificationPreference.kind == "device_error")) == "digest"
    r = c.post("/notifications/preferences", data={"csrf_token": csrf_token(c), "device_error": "loud"})
    assert r.status_code == 303 and "Choose one of the offered" in c.get(r.headers["Location"]).get_data(as_text=True)


def test_device_error_reaches_admins_and_the_sites_members_not_others(app, factory):
    owner, admin, at_site, elsewhere = (factory.user() for _ in range(4))
    t = factory.tenant(members={"owner": owner, "admin": admin, "member": at_site, "viewer": elsewhere}, sites=1,
                       devices=1)
    # A custom role that sees every site hears of it as owners and admins do (by permission, not role name).
    from test_roles import add_member, make_role
    overseer, reader = factory.user(), factory.user()
    add_member(app, t["id"], overseer, custom=make_role(app, t["id"], "Overseer", ["tenant:view", "sites:see-all"]))
    add_member(app, t["id"], reader, custom=make_role(app, t["id"], "Reader", ["tenant:view", "devices:view"]))
    c = app.test_client()
    login(c, admin.email)
    slug, site, device = t["slug"], t["sites"][0], t["devices"][0]
    assert c.post(f"/t/{slug}/sites/{site}/assignments", data={"csrf_token": csrf_token(c),
                                                           "user_id": str(at_site.id)}).status_code in (200, 303)
    r = c.post(f"/t/{slug}/devices/{device}/status", data={"csrf_token": csrf_token(c), "status": "error"})
    assert r.status_code in (200, 303)
    assert [n.kind for n in mine(app, owner.id)] == ["device_error"]
    assert [n.kind for n in mine(app, at_site.id)] == ["site_assigned", "device_error"]
    assert mine(app, elsewhere.id) == [] and mine(app, admin.id) == []  # not the one who set it
    assert [n.kind for n in mine(app, overseer.id)] == ["device_error"] and mine(app, reader.id) == []


def test_role_change_and_unassignment_tell_the_member(app, factory):
    owner, bob = factory.user(name="Olive"), factory.user()
    t = factory.tenant(members={"owner": owner, "member": bob}, sites=1, devices=0)
    c = app.test_client()
    login(c, owner.email)
    r = c.post(f"/t/{t['slug']}/members/{bob.id}/role", data={"role": "viewer", "csrf_token": csrf_token(c)})
    assert r.status_code in (200, 303)
    site = t["sites"][0]
    c.post(f"/t/{t['slug']}/sites/{site}/assignments", data={"csrf_token": csrf_token(c), "user_id": str(bob.id)})
    c.post(f"/t/{t['slug']}/sites/{site}/unassign", data={"csrf_token": csrf_token(c), "user_id": str(bob.id)})
    got = mine(app, bob.id)
    assert [n.kind for n in got] == ["role_changed", "site_assigned", "site_unassigned"]
    assert got[0].params["after"] == "Viewer" and got[0].about_tenant_id == t["id"]
    bob_client = app.test_client()
    login(bob_client, bob.email)
    page = bob_client.get("/notifications/").get_data(as_text=True)
    assert "Olive changed your role in" in page and "removed your access to the site" in page


def test_a_sign_in_from_a_new_browser_tells_the_owner(app, factory):
    ann = factory.user()
    browser = app.test_client()
    login(browser, ann.email)  # the account's first sign-in: nothing to tell
    assert mine(app, ann.id) == []
    browser.post("/logout", data={"csrf_token": csrf_token(browser)})
    login(browser, ann.email)  # the same browser (its device cookie): nothing
    assert mine(app, ann.id) == []
    other = app.test_client()
    other.environ_base["HTTP_USER_AGENT"] = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                                             "Chrome/120.0 Safari/537.36")
    login(other, ann.email)
    # By email and in the security log; the bell stays for work (issue 22).
    assert mine(app, ann.id) == []
    with app.app_context(), user_scope(db.session, ann.id):
        from portal.security.models import SecurityEvent
        told = db.session.scalars(sa.select(SecurityEvent).where(SecurityEvent.event == "signin.new_browser")).all()
        assert [e.details["browser"] for e in told] == ["Chrome on Linux"]


def test_emails_at_once_and_the_daily_digest_arrive_with_one_click_unsubscribe(db_urls, app, smtp, quiet_queue,  # noqa: F811
                                                                                password_hash):
    from portal.jobs import engine
    from portal.notifications.tasks import digest
    mail_app = make_app(db_urls, SMTP_URL=smtp.url, BASE_URL=BASE)
    f = Factory(mail_app, password_hash)
    ann, bob = f.user(name="Ann"), f.user()
    t = f.tenant(members={"owner": ann, "member": bob}, sites=0)
    prefer(app, bob.id, Kind.SITE_ASSIGNED, "digest")
    send(mail_app, t["id"], [ann.id], Kind.DEVICE_ERROR, {"device": "Lobby cam", "site": "HQ", "tenant": "Acme"},
         "/t/x/devices/1")
    for site in ("North", "South"):  # ann: in the portal only (the default); bob: the digest
        send(mail_app, t["id"], [ann.id, bob.id], Kind.SITE_ASSIGNED, {"actor": "Ann", "site": site, "tenant": "T"})
    previous, engine._flask_app = engine._flask_app, mail_app
    try:  # the periodic job, run here as the worker would run it
        assert digest(int(time.time()) + 1) == 1
    finally:
        engine._flask_app = previous
    run_worker(db_urls, SMTP_URL=smtp.url, BASE_URL=BASE)

    [message] = smtp.inbox.wait_for(1, ann.email)
    assert message["Subject"] == "Lobby cam at HQ (Acme) went to error"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.fullmatch(r"<(https://portal\.example\.com/notifications/unsubscribe/\S+)>", message["List-Unsubscribe"])
    assert url and url.group(1) in message.get_body(("plain",)).get_content()
    # The mail client's one-click POST: no session, no CSRF token.
    r = app.test_client().post(url.group(1).removeprefix(BASE), data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200
    with app.app_context(), user_scope(db.session, ann.id):
        assert db.session.scalar(sa.select(NotificationPreference.channel)) == "portal"

    [summary] = smtp.inbox.wait_for(1, bob.email)
    text = summary.get_body(("plain",)).get_content()
    assert "site North" in text and "site South" in text
    assert summary["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
