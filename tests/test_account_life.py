"""The account's life (issue 24): status and who may sign in, ending access, self-service deletion
with its grace period and erasure, change of email, names, picture, preferences and the personal
data export, against the real database, a real job worker and a real SMTP server."""
from __future__ import annotations

import asyncio
import io
import json
import re
import threading
import zipfile
from datetime import datetime, timedelta, timezone

import pyotp
import pytest
import sqlalchemy as sa
from PIL import Image

from conftest import PASSWORD, csrf_from, csrf_token, login, make_app
from mailbox import SmtpServer
from portal.accounts import lifecycle
from portal.accounts.models import User, UserStatus
from portal.database.context import tenant_scope, user_scope
from portal.extensions import db
from portal.security.models import AccountToken, SecurityEvent, UserSession
from test_jobs import quiet_queue  # noqa: F401 (fixture)

BASE = "https://portal.example.com"


def post(client, url, **data):
    # buffered: the response is closed, which is when a request's queued email is delivered
    return client.post(url, data={"csrf_token": csrf_token(client), **data}, buffered=True)


def attempt(client, email, password):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def user_row(app, user_id) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        db.session.expunge(user)
        return user


def sql(app, statement, as_user=None, **params):
    """As the serving role; `as_user` for a person's own rows (sessions, sign-ins, links: RLS)."""
    with app.app_context():
        if as_user is not None:
            db.session.execute(sa.text("SELECT set_config('app.user_id', :u, true)"), {"u": str(as_user)})
        result = db.session.execute(sa.text(statement), params)
        rows = result.all() if result.returns_rows else None
        db.session.commit()
        return rows


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def mail_app(db_urls, smtp):
    return make_app(db_urls, SMTP_URL=smtp.url, BASE_URL=BASE)


def run_worker(db_urls, **config):
    from portal.jobs.worker import run_async
    worker_app = make_app(db_urls, **config)
    # A thread of its own: the browser tests leave an event loop running in this one.
    burst = threading.Thread(target=lambda: asyncio.run(run_async(worker_app, concurrency=1, wait=False,
                                                                  install_signal_handlers=False)))
    burst.start()
    burst.join(60)


def plain(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


# --- status: who may sign in, and ending access ---------------------------------------------

def test_names_split_and_join():
    assert lifecycle.split_name("  Ada   King Lovelace ") == ("Ada", "King Lovelace")
    assert lifecycle.split_name("Plato") == ("Plato", "")
    assert lifecycle.join_name("Ada", "Lovelace") == "Ada Lovelace" and lifecycle.join_name("", "Solo") == "Solo"
    assert lifecycle.tombstone("x") == "deleted-x@invalid"


def test_status_follows_older_writes_of_is_active(app, factory):
    """Migration 0019's trigger: SQL that writes is_active alone moves the status, and back."""
    person = factory.user()
    sql(app, "UPDATE users SET is_active = false WHERE id = :u", u=person.id)
    assert user_row(app, person.id).status == UserStatus.SUSPENDED
    sql(app, "UPDATE users SET status = 'active' WHERE id = :u", u=person.id)
    assert user_row(app, person.id).is_active is True


def test_end_access_ends_sessions_and_links_everywhere_not_per_tenant(app, factory):
    person = factory.user()
    browser = app.test_client()
    login(browser, person.email)
    with app.test_request_context():
        user = db.session.get(User, person.id)
        from portal.security import tokens
        from portal.security.models import TokenPurpose
        tokens.issue(user, TokenPurpose.RESET_PASSWORD)
        assert lifecycle.end_access(person.id, tenant_id=person.id, reason="test") == \
            {"sessions": 0, "account_links": 0, "oauth_grants": 0}
        ended = lifecycle.end_access(person.id, reason="test")
        db.session.commit()
    assert ended == {"sessions": 1, "account_links": 1, "oauth_grants": 0}
    assert browser.get("/account/profile").status_code == 302


def test_suspended_person_is_told_why_only_after_the_right_password(app, factory):
    person, admin = factory.user(), factory.user(user_type="system_admin")
    console = app.test_client()
    login(console, admin.email)
    assert post(console, f"/admin/users/{person.id}/status", action="suspend",
                reason="Unpaid invoices").status_code == 303
    wrong = attempt(app.test_client(), person.email, "not the password")
    assert wrong.status_code == 401 and "suspended" not in wrong.get_data(as_text=True)
    right = attempt(app.test_client(), person.email, PASSWORD)
    text = right.get_data(as_text=True)
    assert right.status_code == 403 and "Your account is suspended" in text and "Unpaid invoices" in text
    stored = user_row(app, person.id)
    assert (stored.status, stored.status_reason, stored.status_changed_by) == \
        (UserStatus.SUSPENDED, "Unpaid invoices", admin.id)
    assert stored.is_active is False and stored.status_changed_at is not None
    # Every way in ends in security.login.complete, which refuses too (passkeys, SSO, invitations).
    with app.test_request_context():
        from portal.security import login as sign_in
        with pytest.raises(lifecycle.AccountUnavailable) as refused:
            sign_in.complete(db.session.get(User, person.id), "password")
        # A way in that did not check first shows the reason on /login, never a 500.
        response = app.handle_user_exception(refused.value)
        assert response.status_code == 303 and response.headers["Location"] == "/login"
        db.session.rollback()


# --- self-service deletion ------------------------------------------------------------------

def test_last_owner_must_hand_over_before_deleting(app, factory):
    owner, admin = factory.user(), factory.user()
    t = factory.tenant(members={"owner": owner, "admin": admin}, sites=0)
    client = app.test_client()
    login(client, owner.email)
    page = client.get("/account/data").get_data(as_text=True)
    assert "You are the last owner" in page and f'href="/t/{t["slug"]}/members/"' in page
    assert "Delete my account…" not in page
    r = post(client, "/account/data/delete", confirm="delete")
    assert r.status_code == 303
    assert "last owner of Tenant" in client.get("/account/data").get_data(as_text=True)
    assert user_row(app, owner.id).status == UserStatus.ACTIVE


def test_deletion_grace_period_cancel_then_erasure(app, mail_app, smtp, factory):
    person, owner = factory.user(name="Dana Delete"), factory.user()
    t = factory.tenant(members={"owner": owner, "member": person}, sites=0)
    client, elsewhere = mail_app.test_client(), mail_app.test_client()
    login(client, person.email)
    login(elsewhere, person.email)
    sql(app, "UPDATE user_sessions SET reauth_at = now() - interval '1 hour' WHERE user_id = :u", person.id,
        u=person.id)
    page = client.get("/account/data").get_data(as_text=True)
    assert "Delete my account…" in page and 'name="confirm" value="delete"' in page
    r = post(client, "/account/data/delete", confirm="delete")
    assert r.headers["Location"].startswith("/account/confirm")  # re-authentication first
    confirm = client.get(r.headers["Location"]).get_data(as_text=True)
    client.post(r.headers["Location"], data={"password": PASSWORD, "csrf_token": csrf_from(confirm)})
    assert post(client, "/account/data/delete").status_code == 400  # the dialog's confirmation is needed
    r = post(client, "/account/data/delete", confirm="delete")
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    assert client.get("/account/profile").status_code == 302 and elsewhere.get("/account/profile").status_code == 302
    stored = user_row(app, person.id)
    assert stored.status == UserStatus.DEACTIVATED
    assert timedelta(days=13, hours=23) < stored.deletion_due_at - datetime.now(timezone.utc) <= timedelta(days=14)
    [notice] = smtp.inbox.wait_for(1, person.email)
    assert "Cancel the deletion" in plain(notice)
    # A forgotten password does not lock them out of changing their mind.
    forgot = mail_app.test_client()
    token = csrf_from(forgot.get("/password/forgot").get_data(as_text=True))
    forgot.post("/password/forgot", data={"email": person.email, "csrf_token": token}, buffered=True)
    assert "/password/reset/" in plain(smtp.inbox.wait_for(2, person.email)[-1])

    # Signing in during the grace period offers to cancel; cancelling signs in.
    r = attempt(client, person.email, PASSWORD)
    assert r.headers["Location"] == "/login/cancel-deletion"
    offer = client.get("/login/cancel-deletion").get_data(as_text=True)
    assert "scheduled for deletion" in offer
    r = client.post("/login/cancel-deletion", data={"csrf_token": csrf_from(offer)})
    assert r.status_code == 303 and client.get("/account/profile").status_code == 200
    assert user_row(app, person.id).status == UserStatus.ACTIVE

    # Asked again, and past its grace period: the worker's purge (here the command) erases it.
    post(client, "/account/data/delete", confirm="delete")
    sql(app, "UPDATE users SET deletion_due_at = now() - interval '1 minute' WHERE id = :u", u=person.id)
    result = app.test_cli_runner().invoke(args=["users", "purge", "--due"])
    assert result.exit_code == 0 and "Erased 1 account." in result.output, result.output
    erased = user_row(app, person.id)
    assert erased.status == UserStatus.DELETED and erased.email == f"deleted-{person.id}@invalid"
    assert (erased.name, erased.given_name, erased.password_hash, erased.deleted_at is not None) == \
        ("Deleted user", "", None, True)
    with app.app_context(), user_scope(db.session, person.id):  # as the person: RLS would hide them otherwise
        assert db.session.scalar(sa.select(sa.func.count()).select_from(UserSession)
                                 .where(UserSession.user_id == person.id)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AccountToken)
                                 .where(AccountToken.user_id == person.id)) == 0
        emails = set(db.session.scalars(sa.select(SecurityEvent.email).where(SecurityEvent.user_id == person.id)))
        assert emails == {f"deleted-{person.id}@invalid"}  # the security log stays, without the address
        with tenant_scope(db.session, t["id"], actor="test:setup"):
            members = db.session.scalars(sa.text("SELECT user_id FROM user_tenant_associations")).all()
            assert person.id not in members
    # The organization's history reads "Deleted user", and the old address opens nothing.
    owner_client = app.test_client()
    login(owner_client, owner.email)
    audit = owner_client.get(f"/t/{t['slug']}/audit/").get_data(as_text=True)
    assert "Deleted user left" in audit and "Dana Delete" not in audit
    assert attempt(app.test_client(), person.email, PASSWORD).status_code == 401


def test_cancelling_a_deletion_with_two_factor_needs_the_code(app, factory):
    person = factory.user()
    client = app.test_client()
    login(client, person.email)
    page = client.get("/account/two-factor").get_data(as_text=True)
    secret = re.search(r"<code data-secret>([A-Z2-7]+)</code>", page).group(1)
    client.post("/account/two-factor", data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_from(page)})
    assert post(client, "/account/data/delete", confirm="delete").status_code == 303
    assert attempt(client, person.email, PASSWORD).headers["Location"] == "/login/cancel-deletion"
    offer = client.get("/login/cancel-deletion").get_data(as_text=True)
    r = client.post("/login/cancel-deletion", data={"csrf_token": csrf_from(offer)})
    assert r.headers["Location"] == "/login/verify"
    assert user_row(app, person.id).status == UserStatus.DEACTIVATED  # not before the second factor
    sql(app, "UPDATE users SET totp_last_step = 0 WHERE id = :u", u=person.id)  # the enrolment's step again
    step = client.get("/login/verify").get_data(as_text=True)
    r = client.post("/login/verify", data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_from(step)})
    assert r.status_code == 303 and user_row(app, person.id).status == UserStatus.ACTIVE
    assert client.get("/account/profile").status_code == 200


def test_purge_removes_rows_of_personal_tables_it_was_not_told_about(app, db_urls, factory):
    """A table another area adds later (passkeys, say) whose rows would go with a deleted users
    row goes with the erasure too, registered as a scrubber or not."""
    from conftest import APP_ROLE
    owner = sa.create_engine(db_urls["owner"], poolclass=sa.pool.NullPool)
    with owner.begin() as conn:
        conn.execute(sa.text("CREATE TABLE probe_passkeys (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
                             "user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE)"))
        conn.execute(sa.text(f"GRANT SELECT, INSERT, DELETE ON probe_passkeys TO {APP_ROLE}"))
    try:
        person, keeper = factory.user(), factory.user()
        sql(app, "INSERT INTO probe_passkeys (user_id) VALUES (:a), (:a), (:b)", a=person.id, b=keeper.id)
        assert app.test_cli_runner().invoke(args=["users", "purge", "--email", person.email]).exit_code == 0
        assert sql(app, "SELECT user_id FROM probe_passkeys") == [(keeper.id,)]
    finally:
        with owner.begin() as conn:
            conn.execute(sa.text("DROP TABLE probe_passkeys"))
        owner.dispose()


def test_purge_on_demand_refuses_a_last_owner(app, factory):
    owner = factory.user()
    factory.tenant(members={"owner": owner}, sites=0)
    result = app.test_cli_runner().invoke(args=["users", "purge", "--email", owner.email])
    assert result.exit_code != 0 and "last owner" in result.output
    assert app.test_cli_runner().invoke(args=["users", "purge"]).exit_code != 0  # --email or --due
    loner = factory.user()
    result = app.test_cli_runner().invoke(args=["users", "purge", "--email", loner.email])
    assert result.exit_code == 0 and f"deleted-{loner.id}@invalid" in result.output


# --- change of email ------------------------------------------------------------------------

def test_email_change_confirmed_by_link_ends_other_sessions(app, mail_app, smtp, factory):
    person, other = factory.user(), factory.user()
    client, elsewhere = mail_app.test_client(), mail_app.test_client()
    login(client, person.email)
    login(elsewhere, person.email)
    taken = post(client, "/account/email", email=other.email.upper())
    assert taken.status_code == 422 and "Another account uses that email address." in taken.get_data(as_text=True)
    new_email = f"moved-{person.id.hex[:8]}@example.com"
    assert post(client, "/account/email", email=new_email).status_code == 303
    [message] = smtp.inbox.wait_for(1, new_email)
    [notice] = smtp.inbox.wait_for(1, person.email)
    assert new_email in plain(notice)
    path = re.search(re.escape(BASE) + r"(/account/verify/[A-Za-z0-9_-]+)", plain(message)).group(1)
    assert "Confirm" in client.get(path).get_data(as_text=True)  # GET shows, POST acts
    assert user_row(app, person.id).email == person.email
    with app.app_context(), user_scope(db.session, person.id):  # only the token's hash is kept
        stored = db.session.scalars(sa.select(AccountToken.token_hash).where(AccountToken.user_id == person.id)).all()
    assert stored and path.rsplit("/", 1)[1].encode() not in stored
    assert client.post(path, data={"csrf_token": csrf_token(client)}).status_code == 303
    assert user_row(app, person.id).email == new_email
    assert client.get("/account/profile").status_code == 200 and elsewhere.get("/account/profile").status_code == 302


# --- profile: names, picture, preferences, counts --------------------------------------------

def picture(kind="PNG", size=(600, 400)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, kind)
    return out.getvalue()


def test_names_picture_locale_and_counts(app, factory):
    person = factory.user(name="Old Name")
    client = app.test_client()
    login(client, person.email)
    page = client.get("/account/profile").get_data(as_text=True)
    assert 'autocomplete="given-name"' in page and "data-login-count>1 time" in page
    assert post(client, "/account/name", given_name="", family_name="").status_code == 422
    assert post(client, "/account/name", given_name=" Grace ", family_name="Brewster  Hopper").status_code == 303
    stored = user_row(app, person.id)
    assert (stored.given_name, stored.family_name, stored.name) == ("Grace", "Brewster Hopper",
                                                                     "Grace Brewster Hopper")

    r = client.post("/account/avatar", data={"csrf_token": csrf_token(client),
                                             "avatar": (io.BytesIO(picture()), "me.png")},
                    content_type="multipart/form-data")
    assert r.status_code == 303
    shell = client.get("/account/profile").get_data(as_text=True)
    url = re.search(r'<img class="avatar" src="(/account/avatar\?v=[0-9a-f]{16})"', shell).group(1)
    served = client.get(url)
    assert served.mimetype == "image/webp" and "immutable" in served.headers["Cache-Control"]
    assert Image.open(io.BytesIO(served.data)).size == (256, 256)
    assert app.test_client().get(url).status_code == 302  # only for its owner, signed in
    for data, name, message in ((b'<svg xmlns="http://www.w3.org/2000/svg"/>', "me.svg", "SVG images are not accepted"),
                                (picture(size=(5000, 10)), "wide.png", "at most 4,096 pixels"),
                                (picture("JPEG"), "me.png", "holds a JPEG image")):
        r = client.post("/account/avatar", data={"csrf_token": csrf_token(client), "avatar": (io.BytesIO(data), name)},
                        content_type="multipart/form-data")
        assert r.status_code == 422 and message in r.get_data(as_text=True), name
    assert post(client, "/account/avatar/remove").status_code == 303
    assert client.get("/account/avatar").status_code == 404

    assert post(client, "/account/locale", locale="xx-EVIL").status_code == 422
    assert post(client, "/account/locale", locale="fr-FR").status_code == 303
    assert user_row(app, person.id).locale == "fr-FR"
    assert 'data-locale="fr-FR"' in client.get("/account/profile").get_data(as_text=True)  # static/time.js


# --- personal data export -------------------------------------------------------------------

def test_export_is_made_by_the_worker_and_emailed_for_its_owner_only(app, db_urls, smtp, factory,
                                                                       quiet_queue):  # noqa: F811
    person, stranger = factory.user(name="Erin Export"), factory.user()
    factory.tenant(members={"member": person}, sites=0)
    client = make_app(db_urls, SMTP_URL=smtp.url, BASE_URL=BASE).test_client()
    login(client, person.email)
    assert post(client, "/account/data/export").status_code == 303
    again = post(client, "/account/data/export")
    assert "already being made" in client.get(again.headers["Location"]).get_data(as_text=True)

    run_worker(db_urls, SMTP_URL=smtp.url, BASE_URL=BASE)

    [message] = smtp.inbox.wait_for(1, person.email)
    path = re.search(re.escape(BASE) + r"(/account/data/export/[A-Za-z0-9_-]+)", plain(message)).group(1)
    assert app.test_client().get(path).status_code == 302  # signed in first
    other = app.test_client()
    login(other, stranger.email)
    assert other.get(path).status_code == 410  # another person's link opens nothing
    download = client.get(path)
    assert download.status_code == 200 and download.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(download.data))
    assert {"account.json", "memberships.json", "sessions.json", "sign_ins.json", "security_events.json",
            "notifications.json", "notification_preferences.json"} <= set(archive.namelist())
    account = json.loads(archive.read("account.json"))
    assert account["email"] == person.email and account["login_count"] == 1
    assert [m["role"] for m in json.loads(archive.read("memberships.json"))] == ["Member"]
    assert len(json.loads(archive.read("sessions.json"))) == 1
    everything = b"".join(archive.read(name) for name in archive.namelist())
    assert b"argon2" not in everything and b"token_hash" not in everything
    with app.app_context(), user_scope(db.session, person.id):  # the table is each user's own (RLS)
        db.session.execute(sa.text("UPDATE account_exports SET expires_at = now() - interval '1 second'"))
        db.session.commit()
    assert client.get(path).status_code == 410  # 24 hours, then gone
