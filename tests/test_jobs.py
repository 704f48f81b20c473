"""The job worker: email retried with backoff until the server answers, permanent refusals visible on
/admin/jobs with a retry button, and the scheduled jobs (invitation expiry, pruning)."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import csrf_from, csrf_token, login, make_app
from mailbox import Inbox, RefusingInbox, SmtpServer
from portal.accounts.models import UserType
from portal.database.context import tenant_scope, user_scope
from portal.extensions import db
from portal.invitations.models import Invitation, InvitationStatus
from portal.jobs.engine import bind
from portal.jobs.worker import WorkerThread
from portal.mail.models import OutboxMessage, OutboxStatus
from portal.security.models import LoginEvent, UserSession

BASE = "https://portal.example.com"
ROOT = Path(__file__).resolve().parent.parent


def invite(client, slug, email):
    return client.post(f"/t/{slug}/invitations/", data={"emails": email, "role": "member",
                                                       "csrf_token": csrf_token(client)}, buffered=True)


def outbox_row(app, recipient):
    with app.app_context():
        return db.session.scalars(sa.select(OutboxMessage).where(OutboxMessage.recipient == recipient)).one()


def job_rows(app, message_id):
    with app.app_context():
        return db.session.execute(sa.text(
            "SELECT j.id, j.status::text AS status, j.attempts, e.error FROM procrastinate_jobs j "
            "LEFT JOIN job_errors e ON e.job_id = j.id WHERE j.task_name = 'mail.send' "
            "AND j.args->>'message_id' = :m"), {"m": str(message_id)}).all()


@pytest.fixture
def quiet_queue(app):
    """Jobs other tests queued (no worker ran for them) would keep this test's worker busy."""
    with app.app_context():
        db.session.execute(sa.text("DELETE FROM procrastinate_jobs"))
        db.session.commit()


@pytest.fixture
def owner_world(factory):
    owner = factory.user(name="Jobs Owner")
    return {"owner": owner, "tenant": factory.tenant(members={"owner": owner}, sites=0)}


def wait_until(condition, timeout: float):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_smtp_down_then_back_the_worker_delivers_exactly_once(db_urls, quiet_queue, owner_world):
    server = SmtpServer()  # nothing listens on its port yet
    web = make_app(db_urls, SMTP_URL=server.url, BASE_URL=BASE, MAIL_RETRY_SECONDS=1)
    owner = web.test_client()
    login(owner, owner_world["owner"].email)
    assert invite(owner, owner_world["tenant"]["slug"], "outage@example.com").status_code == 303
    message = outbox_row(web, "outage@example.com")
    assert message.status == OutboxStatus.PENDING and "Connection refused" in message.last_error
    [job] = job_rows(web, message.id)  # queued in the invitation's own transaction
    assert job.status == "todo"

    worker = WorkerThread(make_app(db_urls, SMTP_URL=server.url, BASE_URL=BASE, MAIL_RETRY_SECONDS=1))
    worker.start()
    try:
        time.sleep(2.5)  # the worker tries and backs off while the server is down
        assert server.inbox.to("outage@example.com") == []
        server.start()
        started = time.time()
        assert wait_until(lambda: server.inbox.to("outage@example.com"), timeout=20), "never delivered"
        delivered_after = time.time() - started
        time.sleep(3)  # later retries, if any were left, would send it again
    finally:
        worker.stop()
        server.stop()
    assert len(server.inbox.to("outage@example.com")) == 1
    assert delivered_after < 17  # within the backoff: 1, 2, 4, 8 s
    message = outbox_row(web, "outage@example.com")
    assert message.status == OutboxStatus.SENT and message.attempts >= 3 and message.payload is None
    [job] = job_rows(web, message.id)
    assert job.status == "succeeded" and job.attempts >= 1


def test_permanent_refusal_fails_at_once_and_shows_on_admin_jobs(db_urls, quiet_queue, owner_world, factory):
    server = SmtpServer(inbox=RefusingInbox()).start()
    try:
        config = {"SMTP_URL": server.url, "BASE_URL": BASE, "MAIL_RETRY_SECONDS": 1}
        web = make_app(db_urls, **{**config, "SMTP_URL": ""})  # only the worker delivers
        owner = web.test_client()
        login(owner, owner_world["owner"].email)
        owner.post(f"/t/{owner_world['tenant']['slug']}/invitations/",
                   data={"emails": "refused@example.com", "role": "member", "csrf_token": csrf_token(owner)})
        message = outbox_row(web, "refused@example.com")
        worker = WorkerThread(make_app(db_urls, **config))
        worker.start()
        try:
            assert wait_until(lambda: job_rows(web, message.id)[0].status == "failed", timeout=15)
            time.sleep(2)  # a retry, if one were scheduled, would come within a second
        finally:
            worker.stop()
    finally:
        server.stop()
    message = outbox_row(web, "refused@example.com")
    assert message.status == OutboxStatus.FAILED and message.attempts == 1 and "550" in message.last_error
    [job] = job_rows(web, message.id)
    assert job.status == "failed" and job.attempts == 1 and "550" in job.error  # one try, no retry

    admin = web.test_client()
    login(admin, factory.user(user_type=UserType.SYSTEM_ADMIN).email)
    page = admin.get("/admin/jobs?status=failed").get_data(as_text=True)
    assert "mail.send" in page and "550 5.1.1 mailbox unavailable" in page and f"/admin/jobs/{job.id}/retry" in page
    assert admin.post(f"/admin/jobs/{job.id}/retry").status_code == 400  # no CSRF token, no retry
    response = admin.post(f"/admin/jobs/{job.id}/retry", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 303
    [job] = job_rows(web, message.id)
    assert job.status == "todo"
    assert outbox_row(web, "refused@example.com").status == OutboxStatus.PENDING
    queued = admin.get("/admin/jobs?status=todo").get_data(as_text=True)
    assert f"<td class=\"num\">{job.id}</td>" in queued
    again = admin.post(f"/admin/jobs/{job.id}/retry", data={"csrf_token": csrf_from(page)}, follow_redirects=True)
    assert "Only a failed job can be retried" in again.get_data(as_text=True)

    member = web.test_client()
    login(member, owner_world["owner"].email)
    assert member.get("/admin/jobs").status_code == 404


def test_admin_jobs_pages_by_keyset(app, quiet_queue, factory):
    with app.app_context():
        db.session.execute(sa.text(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status) "
            "SELECT 'default', 'mail.send', jsonb_build_object('n', g), 'failed' FROM generate_series(1, 60) g"))
        db.session.commit()
    admin = app.test_client()
    login(admin, factory.user(user_type=UserType.SYSTEM_ADMIN).email)
    assert 'href="/admin/jobs"' in admin.get("/admin/tenants").get_data(as_text=True)
    first = admin.get("/admin/jobs").get_data(as_text=True)
    assert "Failed (60)" in first and first.count('"n": ') == 50 and "Older jobs" in first
    older = re.search(r'href="(/admin/jobs\?[^"]+before=\d+)"', first).group(1).replace("&amp;", "&")
    second = admin.get(older).get_data(as_text=True)
    assert second.count('"n": ') == 10 and "Older jobs" not in second
    assert admin.get(f"/admin/jobs?before={2 ** 64}").status_code == 404  # not a bigint: no query, no 500
    assert admin.get("/admin/jobs?status=everything").status_code == 404
    assert admin.post(f"/admin/jobs/{2 ** 64}/retry", data={"csrf_token": csrf_from(first)}).status_code == 404


def test_expiry_job_marks_overdue_invitations_in_every_tenant(app, factory):
    from portal.invitations.tasks import expire_invitations
    tenants = [factory.tenant(sites=0) for _ in range(2)]
    with app.app_context():
        for t in tenants:
            with tenant_scope(db.session, t["id"], actor="test:setup"):
                for email, hours in (("old@example.com", -1), ("fresh@example.com", 24)):
                    db.session.add(Invitation(tenant_id=t["id"], email=email, token_hash=os.urandom(32), role="member",
                                              expires_at=sa.func.now() + timedelta(hours=hours),
                                              created_at=sa.func.now() - timedelta(days=2)))
                db.session.flush()
            db.session.commit()
    bind(app)
    assert expire_invitations(int(time.time())) >= 2
    with app.app_context():
        for t in tenants:
            with tenant_scope(db.session, t["id"], actor="test:setup"):
                statuses = dict(db.session.execute(sa.select(Invitation.email, Invitation.status)
                                                   .where(Invitation.tenant_id == t["id"])).all())
                logged = db.session.execute(sa.text(
                    "SELECT count(*) FROM audit_logs WHERE tenant_id = :t AND action = 'invitation.expired'"),
                    {"t": t["id"]}).scalar()
            assert statuses == {"old@example.com": InvitationStatus.EXPIRED, "fresh@example.com": InvitationStatus.PENDING}
            assert logged == 1


def test_prune_job_removes_old_sign_in_events_and_ended_sessions(app, factory):
    from portal.security.tasks import prune
    user = factory.user()
    with app.app_context(), user_scope(db.session, user.id):  # the person's own rows (RLS)
        long_ago = sa.func.now() - timedelta(days=400)
        db.session.add_all([
            LoginEvent(user_id=user.id, email=user.email, success=True, reason="ok", created_at=long_ago),
            LoginEvent(user_id=user.id, email=user.email, success=True, reason="ok"),
            UserSession(user_id=user.id, token_hash=os.urandom(32), expires_at=long_ago,
                        created_at=long_ago),
            UserSession(user_id=user.id, token_hash=os.urandom(32),
                        expires_at=sa.func.now() + timedelta(hours=1)),
        ])
        db.session.commit()
    bind(app)
    counts = prune(int(time.time()))
    assert counts["login_events"] >= 1 and counts["sessions"] >= 1
    with app.app_context(), user_scope(db.session, user.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LoginEvent)
                                 .where(LoginEvent.user_id == user.id)) == 1
        assert db.session.scalar(sa.select(sa.func.count()).select_from(UserSession)
                                 .where(UserSession.user_id == user.id)) == 1


class SlowInbox(Inbox):
    """Takes its time to accept a message: a job is in flight for that long."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.receiving = seconds, threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.receiving.set()
        await asyncio.sleep(self.seconds)
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.slow
def test_sigterm_lets_the_worker_finish_the_job_in_flight(db_urls, quiet_queue, owner_world):
    server = SmtpServer(inbox=SlowInbox(3)).start()
    web = make_app(db_urls, SMTP_URL="", BASE_URL=BASE)  # only the worker delivers
    owner = web.test_client()
    login(owner, owner_world["owner"].email)
    invite(owner, owner_world["tenant"]["slug"], "in-flight@example.com")
    message = outbox_row(web, "in-flight@example.com")
    env = {**os.environ, "PORTAL_ENV": "testing", "SECRET_KEY": web.config["SECRET_KEY"],
           "PORTAL_MASTER_KEYS": web.config["PORTAL_MASTER_KEYS"],
           "DATABASE_URL": db_urls["app"], "MIGRATION_DATABASE_URL": db_urls["owner"], "SMTP_URL": server.url,
           "BASE_URL": BASE, "WORKER_SHUTDOWN_SECONDS": "20"}
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert server.inbox.receiving.wait(30), "the worker never started delivering"
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(30)
    finally:
        if worker.poll() is None:
            worker.kill()
        server.stop()
    assert code == 0, worker.stdout.read()
    assert len(server.inbox.to("in-flight@example.com")) == 1  # the job in flight finished
    assert outbox_row(web, "in-flight@example.com").status == OutboxStatus.SENT
    assert job_rows(web, message.id)[0].status == "succeeded"


def test_remove_old_drops_the_error_notes_of_jobs_that_are_gone(db_urls, app, quiet_queue):
    from portal.jobs.engine import defer
    from portal.jobs.worker import run_async
    with app.app_context():
        failed = db.session.execute(sa.text(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, status) VALUES ('default', 'mail.send', 'failed') "
            "RETURNING id")).scalar()
        db.session.execute(sa.text("INSERT INTO job_errors (job_id, attempt, error) VALUES (:f, 1, 'kept'), "
                                   "(:g, 1, 'orphan')"), {"f": failed, "g": failed + 10 ** 9})
        defer("jobs.remove_old", timestamp=int(time.time()))
        db.session.commit()
    worker_app = make_app(db_urls)
    # A thread of its own: the browser tests leave an event loop running in this one.
    burst = threading.Thread(target=lambda: asyncio.run(run_async(worker_app, concurrency=1, wait=False,
                                                                  install_signal_handlers=False)))
    burst.start()
    burst.join(30)
    with app.app_context():
        assert db.session.execute(sa.text("SELECT error FROM job_errors ORDER BY error")).scalars().all() == ["kept"]
