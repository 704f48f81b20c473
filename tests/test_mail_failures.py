"""Issue 21: a line break in a name no longer stops email silently, and mail that cannot be built or
that the SMTP server refuses (5xx) fails at once, visibly: on the invitation's row, in the sender's
notifications, on /admin/jobs and in /metrics. A real PostgreSQL, a real SMTP server on loopback
and a real job worker."""
from __future__ import annotations

import asyncio
import re
import threading

import pytest
import sqlalchemy as sa

from conftest import Factory, csrf_from, csrf_token, login, make_app
from mailbox import PickyInbox, SmtpServer, link_in
from portal.accounts.models import User, UserType
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.mail.models import OutboxMessage, OutboxStatus
from portal.oneline import MESSAGE
from portal.tenants.models import Tenant
from test_api import token_for

BASE = "https://portal.example.com"
METRICS = "mail-failures-metrics-token"
BAD = "Mallory\r\nBcc: spy@example.com"
REFUSED = "550 5.1.1 <nobody@example.com>: mailbox unavailable"


@pytest.fixture
def smtp():
    server = SmtpServer(inbox=PickyInbox({"nobody@example.com": REFUSED,
                                          "later@example.com": "451 4.7.1 greylisted, try again later"})).start()
    yield server
    server.stop()


@pytest.fixture
def config(smtp):
    return {"SMTP_URL": smtp.url, "BASE_URL": BASE, "METRICS_TOKEN": METRICS, "MAIL_RETRY_SECONDS": 600}


@pytest.fixture
def mail_app(db_urls, app, config):
    return make_app(db_urls, **config)


@pytest.fixture
def quiet_queue(app):
    """Jobs other tests of this process queued (no worker ran them) would keep the worker busy."""
    with app.app_context():
        db.session.execute(sa.text("DELETE FROM procrastinate_jobs"))
        db.session.commit()


@pytest.fixture
def team(mail_app, password_hash):
    f = Factory(mail_app, password_hash)
    owner = f.user(name="Olive Owner")
    tenant = f.tenant(members={"owner": owner}, sites=1, devices=0, name="Failing Mail Org")
    sysadmin = f.user(name="Sys Admin", user_type=UserType.SYSTEM_ADMIN)
    return {"factory": f, "tenant": tenant, "owner": owner, "sysadmin": sysadmin}


def invite(client, slug, email):
    # buffered: the response is closed as a server closes it, which runs the delivery right after it.
    return client.post(f"/t/{slug}/invitations/", data={"emails": email, "role": "member",
                                                       "csrf_token": csrf_token(client)}, buffered=True)


def outbox_row(app, recipient) -> OutboxMessage:
    with app.app_context():
        row = db.session.scalars(sa.select(OutboxMessage).where(OutboxMessage.recipient.like(f"{recipient}%"))).one()
        db.session.expunge(row)
        return row


def mail_jobs(app, message_id) -> list:
    with app.app_context():
        return db.session.execute(sa.text(
            "SELECT j.id, j.status::text AS status, j.attempts, j.scheduled_at, e.error FROM procrastinate_jobs j "
            "LEFT JOIN job_errors e ON e.job_id = j.id WHERE j.task_name = 'mail.send' "
            "AND j.args->>'message_id' = :m"), {"m": str(message_id)}).all()


def run_worker(db_urls, config) -> None:
    """A worker in burst mode: it runs what is due (and what those jobs queue), then stops."""
    from portal.jobs.worker import run_async
    worker_app = make_app(db_urls, **config)
    # A thread of its own: the browser tests leave an event loop running in this one.
    burst = threading.Thread(target=lambda: asyncio.run(run_async(worker_app, concurrency=1, wait=False,
                                                                  install_signal_handlers=False)))
    burst.start()
    burst.join(60)
    assert not burst.is_alive(), "the burst worker did not finish"


def failed_total(app) -> dict[str, float]:
    body = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {METRICS}"}).get_data(as_text=True)
    found = dict(re.findall(r'^portal_mail_failed_total\{reason="(\w+)"\} ([0-9.e+]+)$', body, re.M))
    assert set(found) == {"unbuildable", "refused", "exhausted"}, body
    return {k: float(v) for k, v in found.items()}


def signed_in(app, user):
    client = app.test_client()
    login(client, user.email)
    return client


def row_of(page: str, email: str) -> str:
    match = re.search(r'<tr data-email="' + re.escape(email) + r'">(.*?)</tr>', page, re.S)
    assert match, f"no invitation row for {email}"
    return match.group(1)


# --- Mail that the server refuses for good (5xx), or for now (4xx) ---------------------------------

def test_a_refused_invitation_fails_at_once_and_its_sender_sees_why(db_urls, mail_app, config, smtp, team,
                                                                  quiet_queue):
    t, owner = team["tenant"], team["owner"]
    before = failed_total(mail_app)
    admin = signed_in(mail_app, owner)
    response = invite(admin, t["slug"], "nobody@example.com")
    assert response.status_code == 303

    # The delivery right after the request met the 550 and failed the message for good, on its first try.
    message = outbox_row(mail_app, "nobody@example.com")
    assert (message.status, message.failure, message.attempts) == (OutboxStatus.FAILED, "refused", 1)
    assert "550 5.1.1" in message.last_error and smtp.inbox.to("nobody@example.com") == []

    run_worker(db_urls, config)  # the message's job runs: it fails too, without a retry
    [job] = mail_jobs(mail_app, message.id)
    assert (job.status, job.attempts) == ("failed", 1)
    assert job.error.startswith("DeliveryFailed: refused: SMTPRecipientsRefused: SMTP 550 5.1.1")
    assert outbox_row(mail_app, "nobody@example.com").attempts == 1

    # The sender sees it on the invitation's row ...
    page = admin.get(f"/t/{t['slug']}/invitations/").get_data(as_text=True)
    row = row_of(page, "nobody@example.com")
    assert "not delivered" in row and "the mail server refused it (SMTP 550 5.1.1" in row
    assert "mailbox unavailable" in row and "resend it" in row
    # ... in the bell, and by email (the notification's default channel).
    told = admin.get("/notifications/").get_data(as_text=True)
    assert "Your invitation of nobody@example.com to Failing Mail Org was not delivered: the mail server " \
           "refused it (SMTP 550 5.1.1" in told
    [notice] = smtp.inbox.wait_for(1, owner.email)
    assert notice["Subject"].startswith("Your invitation of nobody@example.com to Failing Mail Org was not delivered")

    # The operator sees the failed job on /admin/jobs, and /metrics counts it.
    jobs_page = signed_in(mail_app, team["sysadmin"]).get("/admin/jobs?status=failed").get_data(as_text=True)
    assert "mail.send" in jobs_page and "refused: SMTPRecipientsRefused: SMTP 550 5.1.1" in jobs_page
    after = failed_total(mail_app)
    assert after["refused"] == before["refused"] + 1
    assert (after["unbuildable"], after["exhausted"]) == (before["unbuildable"], before["exhausted"])


def test_a_greylisted_invitation_keeps_retrying_quietly(mail_app, smtp, team):
    t = team["tenant"]
    before = failed_total(mail_app)
    admin = signed_in(mail_app, team["owner"])
    assert invite(admin, t["slug"], "later@example.com").status_code == 303
    message = outbox_row(mail_app, "later@example.com")
    # 4xx: pending, tried again later (MAIL_RETRY_SECONDS), not failed, not shown, not counted.
    assert (message.status, message.failure, message.attempts) == (OutboxStatus.PENDING, None, 1)
    assert "451 4.7.1" in message.last_error
    [job] = mail_jobs(mail_app, message.id)
    assert job.status == "todo"
    row = row_of(admin.get(f"/t/{t['slug']}/invitations/").get_data(as_text=True), "later@example.com")
    assert "not delivered" not in row
    assert failed_total(mail_app) == before


# --- Mail that cannot be built -------------------------------------------------------------------

def test_a_message_that_cannot_be_built_fails_at_once_visibly(db_urls, mail_app, config, smtp, team, quiet_queue):
    t, owner = team["tenant"], team["owner"]
    before = failed_total(mail_app)
    web = make_app(db_urls, **{**config, "SMTP_URL": "", "INVITATION_RESEND_COOLDOWN": 0})  # only the worker delivers
    admin = signed_in(web, owner)
    assert invite(admin, t["slug"], "broken@example.com").status_code == 303
    message = outbox_row(web, "broken@example.com")
    # A row written before names were checked: a header value holding a line break.
    with web.app_context():
        db.session.execute(sa.update(OutboxMessage).where(OutboxMessage.id == message.id)
                           .values(recipient="broken@example.com\r\nBcc: spy@example.com"))
        db.session.commit()

    run_worker(db_urls, config)
    message = outbox_row(web, "broken@example.com")
    assert (message.status, message.failure, message.attempts) == (OutboxStatus.FAILED, "unbuildable", 1)
    assert "linefeed" in message.last_error
    [job] = mail_jobs(web, message.id)
    assert (job.status, job.attempts) == ("failed", 1)  # at once: no retry for hours
    assert job.error.startswith("DeliveryFailed: unbuildable: ValueError")
    assert smtp.inbox.to("broken@example.com") == [] and smtp.inbox.to("spy@example.com") == []

    row = row_of(admin.get(f"/t/{t['slug']}/invitations/").get_data(as_text=True), "broken@example.com")
    assert "not delivered" in row and "the email could not be written" in row
    told = admin.get("/notifications/").get_data(as_text=True)
    assert "Your invitation of broken@example.com to Failing Mail Org was not delivered: the email could not " \
           "be written" in told
    jobs_page = signed_in(web, team["sysadmin"]).get("/admin/jobs?status=failed").get_data(as_text=True)
    assert "unbuildable: ValueError: Header values may not contain linefeed" in jobs_page
    assert failed_total(mail_app)["unbuildable"] == before["unbuildable"] + 1

    # Resending writes a new message: it is delivered and the row's notice goes.
    page = admin.get(f"/t/{t['slug']}/invitations/").get_data(as_text=True)
    resend = re.search(r'action="(/t/[^"]+/resend[^"]*)"', row_of(page, "broken@example.com")).group(1)
    assert admin.post(resend.replace("&amp;", "&"), data={"csrf_token": csrf_from(page)}).status_code == 303
    run_worker(db_urls, config)
    assert len(smtp.inbox.wait_for(1, "broken@example.com")) == 1
    row = row_of(admin.get(f"/t/{t['slug']}/invitations/").get_data(as_text=True), "broken@example.com")
    assert "not delivered" not in row


def test_names_stored_before_the_check_are_made_one_line_in_the_email(mail_app, smtp, team):
    """Rows may already hold a line break (the check is new): the invitation is still delivered,
    its subject on one line, and no header is injected."""
    f = team["factory"]
    mallory = f.user(name=BAD)
    t = f.tenant(members={"owner": mallory}, sites=0, name="Evil\nOrg\u2028Inc")
    admin = signed_in(mail_app, mallory)
    assert invite(admin, t["slug"], "victim@example.com").status_code == 303
    [message] = smtp.inbox.wait_for(1, "victim@example.com")
    assert message["Subject"] == "Mallory Bcc: spy@example.com invited you to Evil Org Inc"
    assert message["Bcc"] is None and message["To"] == "victim@example.com"
    assert smtp.inbox.to("spy@example.com") == []
    assert outbox_row(mail_app, "victim@example.com").status == OutboxStatus.SENT


# --- Names refused at every form and API member that reaches a header ----------------------------

@pytest.mark.parametrize("bad", [BAD, "Mallory\u2028Bcc: spy@example.com", "Tab\there", "Nel\x85here"])
def test_account_and_organization_names_refuse_control_characters(mail_app, team, bad):
    t, owner = team["tenant"], team["owner"]
    client = signed_in(mail_app, owner)
    token = csrf_token(client)
    refused = client.post("/account/name", data={"name": bad, "csrf_token": token})
    assert refused.status_code == 422 and MESSAGE in refused.get_data(as_text=True)
    refused = client.post(f"/t/{t['slug']}/settings/general", data={"name": bad, "slug": t["slug"],
                                                                    "csrf_token": token})
    assert refused.status_code == 422 and MESSAGE in refused.get_data(as_text=True)
    with mail_app.app_context():
        assert db.session.get(User, owner.id).name == "Olive Owner"
        assert db.session.get(Tenant, t["id"]).name == "Failing Mail Org"
    # The same names on one line are taken.
    assert client.post("/account/name", data={"name": "Olive O. Owner", "csrf_token": token}).status_code == 303


def test_every_name_that_reaches_an_email_refuses_a_line_break(mail_app, team):
    t, slug = team["tenant"], team["tenant"]["slug"]
    owner = signed_in(mail_app, team["owner"])
    token = csrf_token(owner)
    forms = {
        f"/t/{slug}/roles/new": {"name": BAD, "permissions": ["devices:view"]},
        f"/t/{slug}/sites/new": {"name": BAD, "timezone": "UTC"},
        f"/t/{slug}/devices/new": {"name": BAD, "type": "sensor", "serial_number": "SN-BAD-1",
                                   "site_id": str(t["sites"][0]), "status": "online"},
        f"/t/{slug}/tasks/new": {"title": BAD, "priority": "medium"},
        f"/t/{slug}/api-clients/new": {"name": "Sync\x1b[31m red", "scopes": ["devices:view"]},
    }
    for url, data in forms.items():
        response = owner.post(url, data={**data, "csrf_token": token})
        assert response.status_code == 422, url
        assert MESSAGE in response.get_data(as_text=True), url

    sysadmin = signed_in(mail_app, team["sysadmin"])
    response = sysadmin.post("/admin/tenants/new", data={
        "name": BAD, "slug": f"bad-{team['factory']._unique()}", "plan": "free", "owner_email": "o@example.com",
        "csrf_token": csrf_token(sysadmin)})
    assert response.status_code == 422 and MESSAGE in response.get_data(as_text=True)

    # The API's names: 422 problem details naming the member.
    http = mail_app.test_client()
    bearer = {"Authorization": f"Bearer {token_for(mail_app, http, t['id'], ['sites:write', 'sites:view'])}"}
    refused = http.post("/api/v1/sites", json={"name": BAD, "timezone": "UTC"}, headers=bearer)
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
    assert {"field": "name", "detail": MESSAGE} in refused.get_json()["errors"]
    refused = http.post("/api/v1/sites", json={"name": "Fine", "contact": {"name": "A\u2029B"}}, headers=bearer)
    assert refused.status_code == 422 and {"field": "contact.name", "detail": MESSAGE} in refused.get_json()["errors"]
    with mail_app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        names = db.session.execute(sa.text("SELECT name FROM sites UNION ALL SELECT name FROM devices "
                                           "UNION ALL SELECT name FROM tenant_roles")).scalars().all()
    assert not any("\n" in n or "\u2029" in n for n in names)


def test_signing_up_from_an_invitation_refuses_a_line_break_in_the_name(mail_app, smtp, team):
    admin = signed_in(mail_app, team["owner"])
    assert invite(admin, team["tenant"]["slug"], "newcomer@example.com").status_code == 303
    path = link_in(smtp.inbox.wait_for(1, "newcomer@example.com")[0], BASE)
    guest = mail_app.test_client()
    page = guest.get(path).get_data(as_text=True)
    refused = guest.post(path, data={"action": "sign_up", "name": BAD, "password": "a long enough passphrase 1",
                                     "confirm": "a long enough passphrase 1", "csrf_token": csrf_from(page)})
    assert refused.status_code == 422 and MESSAGE in refused.get_data(as_text=True)
    with mail_app.app_context():
        assert db.session.scalar(sa.select(User).where(User.email == "newcomer@example.com")) is None


def test_a_providers_name_with_a_line_break_is_made_one_line():
    from portal.sso.services import _name, _plausible
    assert _name({"name": BAD}) == "Mallory Bcc: spy@example.com"
    assert _name({"given_name": "Ann\r\n", "family_name": "Lee\u2028X"}) == "Ann Lee X"
    assert not _plausible("ann@example.com\r\nbcc@example.com") and _plausible("ann@example.com")


def test_the_longest_names_still_make_an_invitation(mail_app, smtp, team):
    """A 200-character inviter and organization name make a subject longer than the outbox keeps."""
    f = team["factory"]
    long_owner = f.user(name="N" * 200)
    t = f.tenant(members={"owner": long_owner}, sites=0, name="O" * 200)
    admin = signed_in(mail_app, long_owner)
    assert invite(admin, t["slug"], "long@example.com").status_code == 303
    [message] = smtp.inbox.wait_for(1, "long@example.com")
    assert message["Subject"].startswith("N" * 200 + " invited you to OOO") and len(message["Subject"]) == 300
