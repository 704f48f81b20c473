"""Invitations end to end: a real SMTP server receives the email; the link is followed
as a new user, an existing user and the wrong user."""
from __future__ import annotations

import hashlib
import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from conftest import PASSWORD, Factory, csrf_from, csrf_token, login, make_app, without_csrf
from mailbox import SmtpServer, link_in
from portal.database.context import acting_as, tenant_scope
from portal.extensions import db
from portal.invitations.models import Invitation, InvitationStatus
from portal.mail.models import OutboxMessage, OutboxStatus
from portal.mail.outbox import deliver_due
from portal.tenancy.models import Membership
from portal.sites.models import SiteAssignment

BASE = "https://portal.example.com"


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def mail_app(db_urls, app, smtp):
    return make_app(db_urls, SMTP_URL=smtp.url, BASE_URL=BASE)


@pytest.fixture
def team(mail_app, password_hash):
    f = Factory(mail_app, password_hash)
    owner, admin, member = f.user(name="Olivia Owner"), f.user(name="Adam Admin"), f.user(name="Mia Member")
    tenant = f.tenant(members={"owner": owner, "admin": admin, "member": member}, sites=2, devices=0,
                      name="Invite Test Org")
    return {"factory": f, "tenant": tenant, "owner": owner, "admin": admin, "member": member}


def invite(client, slug, emails, role="member", sites=(), headers=None):
    token = csrf_token(client)
    # buffered: the response is closed as a real server closes it, which runs the after-commit delivery.
    return client.post(f"/t/{slug}/invitations/", data={"emails": emails, "role": role, "sites": list(sites),
                                                       "csrf_token": token}, headers=headers or {}, buffered=True)


def rows(app, tenant_id, model, *where):
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        return db.session.scalars(sa.select(model).where(model.tenant_id == tenant_id, *where)).all()


def test_invitation_email_and_sign_up_as_a_new_user(mail_app, smtp, team):
    t = team["tenant"]
    admin = mail_app.test_client()
    login(admin, team["owner"].email)
    response = invite(admin, t["slug"], "  New.Person@Example.COM ", sites=[str(t["sites"][0])])
    assert response.status_code == 303
    assert "Invitation sent to new.person@example.com" in admin.get(response.headers["Location"]).get_data(True)

    [message] = smtp.inbox.wait_for(1, "new.person@example.com")
    assert message["To"] == "new.person@example.com"
    assert message["Subject"] == "Olivia Owner invited you to Invite Test Org"
    assert message.is_multipart()
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    for part in (text, html):
        assert "Invite Test Org" in part and "Olivia Owner" in part and "Member" in part and "expires" in part
    path = link_in(message, BASE)
    token = path.rsplit("/", 1)[1]
    assert len(token) >= 43  # 256 bits, url-safe base64

    # The database holds only the SHA-256 of the token, never the token itself.
    [stored] = rows(mail_app, t["id"], Invitation, Invitation.email == "new.person@example.com")
    assert stored.token_hash == hashlib.sha256(token.encode()).digest()
    with mail_app.app_context():
        dump = db.session.execute(sa.text("SELECT string_agg(t::text, ' ') FROM email_outbox t")).scalar() or ""
    assert token not in dump

    guest = mail_app.test_client()
    first = guest.get(path)
    assert first.status_code == 200 and first.headers["Referrer-Policy"] == "no-referrer"
    page = first.get_data(as_text=True)
    assert "Create your account" in page and "new.person@example.com" in page and "Olivia Owner" in page
    assert guest.get(path).status_code == 200  # GET consumes nothing (mail scanners prefetch)

    short = guest.post(path, data={"action": "sign_up", "name": "New Person", "password": "short",
                                   "confirm": "short", "csrf_token": csrf_from(page)})
    assert short.status_code == 422 and "at least 12 characters" in short.get_data(as_text=True)
    assert rows(mail_app, t["id"], Membership, Membership.role == "member").__len__() == 1

    done = guest.post(path, data={"action": "sign_up", "name": "New Person", "password": PASSWORD,
                                  "confirm": PASSWORD, "csrf_token": csrf_from(page)})
    assert done.status_code == 303 and done.headers["Location"] == f"/t/{t['slug']}/"
    landing = guest.get(done.headers["Location"])
    assert landing.status_code == 200 and "Welcome to Invite Test Org" in landing.get_data(as_text=True)

    members = rows(mail_app, t["id"], Membership)
    new = [m for m in members if m.user.email == "new.person@example.com"]
    assert len(new) == 1 and new[0].role.value == "member" and new[0].status.value == "active"
    assert [a.site_id for a in rows(mail_app, t["id"], SiteAssignment, SiteAssignment.user_id == new[0].user_id)] \
        == [t["sites"][0]]
    # The inviter hears of it (issue 14): in the bell.
    told = admin.get("/notifications/").get_data(as_text=True)
    assert "New Person accepted your invitation to Invite Test Org" in told
    # Single use: the link is now invalid, and the page names no tenant.
    again = mail_app.test_client().get(path)
    assert again.status_code == 410 and "Invite Test Org" not in again.get_data(as_text=True)


def test_existing_account_signs_in_and_returns_to_the_invitation(mail_app, smtp, team):
    t, existing = team["tenant"], team["factory"].user(name="Existing Person")
    owner = mail_app.test_client()
    login(owner, team["owner"].email)
    assert invite(owner, t["slug"], existing.email, role="viewer").status_code == 303
    path = link_in(smtp.inbox.wait_for(1, existing.email)[0], BASE)

    guest = mail_app.test_client()
    page = guest.get(path).get_data(as_text=True)
    assert "Sign in to accept" in page and "Create your account" not in page
    sign_in = guest.get(f"/login?next={path}")
    response = guest.post(f"/login?next={path}", data={
        "email": existing.email, "password": PASSWORD, "csrf_token": csrf_from(sign_in.get_data(as_text=True))})
    assert response.headers["Location"] == path
    page = guest.get(path).get_data(as_text=True)
    assert "Accept and join" in page
    accepted = guest.post(path, data={"action": "accept", "csrf_token": csrf_from(page)},
                          headers={"HX-Request": "true"})
    assert accepted.status_code == 200 and accepted.headers["HX-Redirect"] == f"/t/{t['slug']}/"
    assert guest.get(f"/t/{t['slug']}/").status_code == 200
    [m] = [m for m in rows(mail_app, t["id"], Membership) if m.user_id == existing.id]
    assert m.role.value == "viewer"


def test_wrong_account_is_told_and_never_accepts(mail_app, smtp, team):
    t, invited = team["tenant"], "someone.else@example.com"
    owner = mail_app.test_client()
    login(owner, team["owner"].email)
    invite(owner, t["slug"], invited)
    path = link_in(smtp.inbox.wait_for(1, invited)[0], BASE)

    wrong = mail_app.test_client()
    login(wrong, team["member"].email)  # signed in, but as another address
    page = wrong.get(path).get_data(as_text=True)
    assert team["member"].email in page and invited in page and "Sign out and continue" in page
    refused = wrong.post(path, data={"action": "accept", "csrf_token": csrf_from(page)})
    assert refused.status_code == 422
    assert [i.status for i in rows(mail_app, t["id"], Invitation, Invitation.email == invited)] == ["pending"]
    out = wrong.post("/logout", data={"next": path, "csrf_token": csrf_from(page)})
    assert out.headers["Location"] == f"/login?next={path}"


def test_decline_then_the_link_is_dead(mail_app, smtp, team):
    t = team["tenant"]
    owner = mail_app.test_client()
    login(owner, team["owner"].email)
    invite(owner, t["slug"], "decliner@example.com")
    path = link_in(smtp.inbox.wait_for(1, "decliner@example.com")[0], BASE)
    guest = mail_app.test_client()
    page = guest.get(path).get_data(as_text=True)
    assert guest.post(path, data={"action": "decline", "csrf_token": csrf_from(page)}).status_code == 303
    [inv] = rows(mail_app, t["id"], Invitation, Invitation.email == "decliner@example.com")
    assert inv.status == InvitationStatus.DECLINED and inv.declined_at is not None
    assert guest.get(path).status_code == 410


def test_invalid_links_reveal_nothing(mail_app, smtp, team):
    t = team["tenant"]
    owner = mail_app.test_client()
    login(owner, team["owner"].email)
    invite(owner, t["slug"], "a@example.com, b@example.com")
    expired_path = link_in(smtp.inbox.wait_for(1, "a@example.com")[0], BASE)
    cancelled_path = link_in(smtp.inbox.wait_for(1, "b@example.com")[0], BASE)
    with mail_app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        db.session.execute(sa.update(Invitation).where(Invitation.tenant_id == t["id"], Invitation.email == "a@example.com")
                           .values(created_at=sa.func.now() - timedelta(days=9),
                                   expires_at=sa.func.now() - timedelta(days=1)))
        db.session.commit()
    [b] = rows(mail_app, t["id"], Invitation, Invitation.email == "b@example.com")
    token = csrf_token(owner)
    assert owner.post(f"/t/{t['slug']}/invitations/{b.id}/cancel", data={"csrf_token": token}).status_code == 303
    guest = mail_app.test_client()
    pages = [guest.get(p) for p in (expired_path, cancelled_path, "/invitations/not-a-real-token")]
    bodies = {r.get_data(as_text=True) for r in pages}
    assert [r.status_code for r in pages] == [410, 410, 410]
    assert len({without_csrf(b) for b in bodies}) == 1  # one and the same page
    assert all("Invite Test Org" not in b and "Olivia" not in b for b in bodies)
    listing = owner.get(f"/t/{t['slug']}/invitations/?status=expired").get_data(as_text=True)
    assert 'data-email="a@example.com"' in listing
    listing = owner.get(f"/t/{t['slug']}/invitations/?status=cancelled").get_data(as_text=True)
    assert 'data-email="b@example.com"' in listing


def test_resend_issues_a_new_token_and_respects_the_cooldown(mail_app, smtp, team):
    t = team["tenant"]
    owner = mail_app.test_client()
    login(owner, team["owner"].email)
    invite(owner, t["slug"], "resend@example.com")
    old_path = link_in(smtp.inbox.wait_for(1, "resend@example.com")[0], BASE)
    [inv] = rows(mail_app, t["id"], Invitation, Invitation.email == "resend@example.com")
    url = f"/t/{t['slug']}/invitations/{inv.id}/resend"
    too_soon = owner.post(url, data={"csrf_token": csrf_token(owner)})
    assert "you can resend in" in owner.get(too_soon.headers["Location"]).get_data(as_text=True)
    assert len(smtp.inbox.to("resend@example.com")) == 1
    with mail_app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        db.session.execute(sa.update(Invitation).where(Invitation.tenant_id == t["id"], Invitation.id == inv.id)
                           .values(last_sent_at=sa.func.now() - timedelta(minutes=5)))
        db.session.commit()
    owner.post(url, data={"csrf_token": csrf_token(owner)}, buffered=True)
    new_path = link_in(smtp.inbox.wait_for(2, "resend@example.com")[1], BASE)
    assert new_path != old_path
    guest = mail_app.test_client()
    assert guest.get(old_path).status_code == 410 and guest.get(new_path).status_code == 200


def test_duplicates_members_and_admin_limits_get_clear_messages(mail_app, smtp, team):
    t = team["tenant"]
    owner = mail_app.test_client()
    login(owner, team["owner"].email)
    r = invite(owner, t["slug"], team["member"].email.upper())
    assert r.status_code == 422 and f"Already a member: {team['member'].email}" in r.get_data(as_text=True)
    invite(owner, t["slug"], "dup@example.com")
    r = invite(owner, t["slug"], "DUP@example.com")
    assert r.status_code == 422 and "Already invited (pending): dup@example.com" in r.get_data(as_text=True)
    r = invite(owner, t["slug"], "not-an-email, fine@example.com")
    assert r.status_code == 422 and "Not a valid email address: not-an-email" in r.get_data(as_text=True)
    assert rows(mail_app, t["id"], Invitation, Invitation.email == "fine@example.com") == []  # all or nothing
    admin = mail_app.test_client()
    login(admin, team["admin"].email)
    page = admin.get(f"/t/{t['slug']}/invitations/").get_data(as_text=True)
    assert 'value="owner"' not in page
    r = invite(admin, t["slug"], "boss@example.com", role="owner")
    assert r.status_code == 422 and rows(mail_app, t["id"], Invitation, Invitation.email == "boss@example.com") == []


def test_plan_limit_counts_members_and_pending_invitations(mail_app, smtp, team):
    f = team["factory"]
    owner_user = f.user()
    t = f.tenant(members={"owner": owner_user, "member": f.user()}, max_users=4, sites=0)
    owner = mail_app.test_client()
    login(owner, owner_user.email)
    r = invite(owner, t["slug"], "one@example.com, two@example.com, three@example.com")
    assert r.status_code == 422 and "allows 4 users and 2 seats are free" in r.get_data(as_text=True)
    assert invite(owner, t["slug"], "one@example.com").status_code == 303
    assert invite(owner, t["slug"], "two@example.com").status_code == 303
    assert invite(owner, t["slug"], "three@example.com").status_code == 422
    # Enforced on accept too: the plan shrank after the invitations went out.
    path = link_in(smtp.inbox.wait_for(1, "one@example.com")[0], BASE)
    with mail_app.app_context(), acting_as(db.session, "test:console"):
        db.session.execute(sa.text("UPDATE tenants SET max_users = 2 WHERE id = :i"), {"i": t["id"]})
        db.session.commit()
    guest = mail_app.test_client()
    page = guest.get(path).get_data(as_text=True)
    r = guest.post(path, data={"action": "sign_up", "name": "One", "password": PASSWORD, "confirm": PASSWORD,
                               "csrf_token": csrf_from(page)})
    assert r.status_code == 422 and "reached its plan" in r.get_data(as_text=True)
    assert len(rows(mail_app, t["id"], Membership)) == 2
    with mail_app.app_context():  # no half-made account either
        assert db.session.execute(sa.text("SELECT count(*) FROM users WHERE email = 'one@example.com'")).scalar() == 0


def test_fifty_concurrent_accepts_make_one_membership(mail_app, smtp, team):
    t, person = team["tenant"], team["factory"].user()
    owner = mail_app.test_client()
    login(owner, team["owner"].email)
    invite(owner, t["slug"], person.email)
    path = link_in(smtp.inbox.wait_for(1, person.email)[0], BASE)
    clients = []
    for _ in range(50):
        c = mail_app.test_client()
        login(c, person.email)
        clients.append((c, csrf_token(c)))
    barrier, results = threading.Barrier(50), []

    def accept(c, token):
        barrier.wait()
        results.append(c.post(path, data={"action": "accept", "csrf_token": token}).status_code)

    threads = [threading.Thread(target=accept, args=pair) for pair in clients]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(set(results)) in ([303, 410], [303, 410, 422], [303, 422]) and results.count(303) == 1
    assert len([m for m in rows(mail_app, t["id"], Membership) if m.user_id == person.id]) == 1
    with mail_app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        accepts = db.session.execute(sa.text(
            "SELECT count(*) FROM audit_logs WHERE action = 'invitation.accept' AND user_id = :u"),
            {"u": person.id}).scalar()
    assert accepts == 1


def test_audit_rows_for_invitation_lifecycle(mail_app, smtp, team):
    t = team["tenant"]
    owner = mail_app.test_client()
    login(owner, team["owner"].email)
    invite(owner, t["slug"], "audited@example.com")
    [inv] = rows(mail_app, t["id"], Invitation, Invitation.email == "audited@example.com")
    owner.post(f"/t/{t['slug']}/invitations/{inv.id}/cancel", data={"csrf_token": csrf_token(owner)})
    with mail_app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        logged = db.session.execute(sa.text(
            "SELECT action, user_id, user_agent, ip_address, before, after, request_id FROM audit_logs "
            "WHERE resource_id = :r ORDER BY created_at"), {"r": str(inv.id)}).all()
    assert [r.action for r in logged] == ["invitation.create", "invitation.cancel"]
    assert all(r.user_id == team["owner"].id and r.request_id for r in logged)
    assert logged[1].user_agent.startswith("Werkzeug/") and str(logged[1].ip_address) == "127.0.0.1"
    assert logged[1].before == {"status": "pending"} and logged[1].after["status"] == "cancelled"


def test_smtp_down_during_invite_then_delivered_exactly_once(db_urls, app, team):
    server = SmtpServer()  # a port with nothing listening yet
    down_app = make_app(db_urls, SMTP_URL=server.url, BASE_URL=BASE)
    owner = down_app.test_client()
    login(owner, team["owner"].email)
    assert invite(owner, team["tenant"]["slug"], "patient@example.com").status_code == 303
    with down_app.app_context():
        [msg] = db.session.scalars(sa.select(OutboxMessage).where(OutboxMessage.recipient == "patient@example.com")).all()
        assert msg.status == OutboxStatus.PENDING and msg.attempts == 1 and "Connection refused" in msg.last_error
        assert msg.next_attempt_at > msg.created_at  # backed off
        msg_id = msg.id
        deliver_due()  # other tests' mail may be due by now; this message is not
        db.session.expire_all()
        assert db.session.get(OutboxMessage, msg_id).attempts == 1
    server.start()
    try:
        with down_app.app_context():
            assert deliver_due(ignore_backoff=True)["sent"] >= 1
            assert deliver_due(ignore_backoff=True)["sent"] == 0
            msg = db.session.get(OutboxMessage, msg_id)
            assert msg.status == OutboxStatus.SENT and msg.payload is None  # body erased once delivered
        runner = down_app.test_cli_runner()
        assert "sent=0" in runner.invoke(args=["outbox", "deliver"]).output
        assert len(server.inbox.to("patient@example.com")) == 1
    finally:
        server.stop()


def test_invitation_links_never_come_from_the_host_header(db_urls, smtp, team, monkeypatch):
    monkeypatch.delenv("BASE_URL", raising=False)
    monkeypatch.setenv("PORT", "8123")  # `make run PORT=8123`
    dev = make_app(db_urls, PORTAL_ENV="development", SMTP_URL=smtp.url)
    owner = dev.test_client()
    page = owner.get("/login", base_url="http://evil.example").get_data(as_text=True)
    owner.post("/login", data={"email": team["owner"].email, "password": PASSWORD, "csrf_token": csrf_from(page)},
               base_url="http://evil.example")
    page = owner.get(f"/t/{team['tenant']['slug']}/invitations/", base_url="http://evil.example")
    r = owner.post(f"/t/{team['tenant']['slug']}/invitations/", base_url="http://evil.example", buffered=True,
                   data={"emails": "hosted@example.com", "role": "member",
                         "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert r.status_code == 303
    [message] = smtp.inbox.wait_for(1, "hosted@example.com")
    assert "evil.example" not in message.as_string()
    assert link_in(message, "http://127.0.0.1:8123").startswith("/invitations/")


def test_dev_mailbox_shows_links_outside_production(db_urls, app, team, monkeypatch):
    for name in ("BASE_URL", "HOST", "PORT"):
        monkeypatch.delenv(name, raising=False)
    dev = make_app(db_urls, PORTAL_ENV="development", SMTP_URL="")
    owner = dev.test_client()
    login(owner, team["owner"].email)
    invite(owner, team["tenant"]["slug"], "mailbox@example.com")
    listing = dev.test_client().get("/dev/mail/").get_data(as_text=True)
    message_path = re.search(r'href="(/dev/mail/[0-9a-f-]+)">[^<]*Invite Test Org', listing).group(1)
    body = dev.test_client().get(message_path).get_data(as_text=True)
    # BASE_URL unset in development: links point where `make run` serves (HOST, PORT), not at the request's host.
    link = re.search(r'<a href="http://127\.0\.0\.1:5000(/invitations/[A-Za-z0-9_-]+)"', body).group(1)
    assert dev.test_client().get(link).status_code == 200
    prod = make_app(db_urls, PORTAL_ENV="production", BASE_URL=BASE)
    assert prod.test_client().get("/dev/mail/").status_code == 404


def test_resending_an_old_expired_invitation_with_a_newer_one_pending_is_refused(mail_app, smtp, team):
    t = team["tenant"]
    owner = mail_app.test_client()
    login(owner, team["owner"].email)
    invite(owner, t["slug"], "again@example.com")
    with mail_app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        db.session.execute(sa.update(Invitation).where(Invitation.tenant_id == t["id"],
                                                       Invitation.email == "again@example.com")
                           .values(created_at=sa.func.now() - timedelta(days=9),
                                   expires_at=sa.func.now() - timedelta(days=1)))
        db.session.commit()
    assert invite(owner, t["slug"], "again@example.com").status_code == 303  # the old one flips to expired
    old = [i for i in rows(mail_app, t["id"], Invitation, Invitation.email == "again@example.com")
           if i.status == InvitationStatus.EXPIRED][0]
    r = owner.post(f"/t/{t['slug']}/invitations/{old.id}/resend", data={"csrf_token": csrf_token(owner)})
    assert r.status_code == 303
    assert "has a newer pending invitation" in owner.get(r.headers["Location"]).get_data(as_text=True)


def test_admin_cannot_resend_an_owner_invitation(mail_app, smtp, team):
    t = team["tenant"]
    owner, admin = mail_app.test_client(), mail_app.test_client()
    login(owner, team["owner"].email)
    login(admin, team["admin"].email)
    invite(owner, t["slug"], "future-owner@example.com", role="owner")
    [inv] = rows(mail_app, t["id"], Invitation, Invitation.email == "future-owner@example.com")
    with mail_app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        db.session.execute(sa.update(Invitation).where(Invitation.tenant_id == t["id"], Invitation.id == inv.id)
                           .values(last_sent_at=sa.func.now() - timedelta(hours=1)))
        db.session.commit()
    r = admin.post(f"/t/{t['slug']}/invitations/{inv.id}/resend", data={"csrf_token": csrf_token(admin)})
    assert "Only an owner can invite another owner." in admin.get(r.headers["Location"]).get_data(as_text=True)


def test_an_invitation_for_a_custom_role_names_it_and_grants_it(mail_app, smtp, team):
    """The email and the acceptance page name the tenant's own role; accepting grants it."""
    from portal.tenancy.models import TenantRole, TenantRolePermission
    t, existing = team["tenant"], team["factory"].user(name="Custom Person")
    with mail_app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        role = TenantRole(tenant_id=t["id"], name="Night shift")
        db.session.add(role)
        db.session.flush()
        role.grants = [TenantRolePermission(tenant_id=t["id"], role_id=role.id, permission="tenant:view")]
        db.session.commit()
        role_id = role.id
    owner = mail_app.test_client()
    login(owner, team["owner"].email)
    assert invite(owner, t["slug"], existing.email, role=str(role_id)).status_code == 303
    message = smtp.inbox.wait_for(1, existing.email)[0]
    assert "as Night shift" in message.get_body(preferencelist=("plain",)).get_content()
    guest = mail_app.test_client()
    login(guest, existing.email)
    path = link_in(message, BASE)
    page = guest.get(path).get_data(as_text=True)
    assert "Night shift" in page
    assert guest.post(path, data={"action": "accept", "csrf_token": csrf_from(page)}).status_code == 303
    [m] = [m for m in rows(mail_app, t["id"], Membership) if m.user_id == existing.id]
    assert (m.role, m.custom_role_id) == (None, role_id)
    assert "Night shift" in guest.get(f"/t/{t['slug']}/").get_data(as_text=True)
