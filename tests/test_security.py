"""Sign-in and session security (OWASP ASVS 5 level 2 rules), against the real database."""
from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from conftest import PASSWORD, csrf_from, csrf_token, login, make_app
from mailbox import SmtpServer
from portal.accounts.models import User
from portal.database.context import acting_as, user_scope
from portal.extensions import db
from portal.security.models import AccountToken, UserSession


def attempt(client, email, password, path="/login"):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post(path, data={"email": email, "password": password, "csrf_token": token})


def sql(app, statement, as_user=None, **params):
    """As the serving role, as an operator would set up a test; `as_user` for a person's own rows
    (sessions, sign-ins, links: RLS)."""
    with app.app_context(), acting_as(db.session, "test:setup"):
        if as_user is not None:
            db.session.execute(sa.text("SELECT set_config('app.user_id', :u, true)"), {"u": str(as_user)})
        result = db.session.execute(sa.text(statement), params)
        rows = result.all() if result.returns_rows else None
        db.session.commit()
        return rows


@pytest.fixture
def person(factory):
    return factory.user(name="Sam Secure")


@pytest.fixture
def member(factory, person):
    tenant = factory.tenant(members={"member": person}, sites=0)
    return person, tenant


# --- passwords -------------------------------------------------------------------------------

def test_passwords_are_argon2id_and_rehashed_when_parameters_change(app, person):
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    sql(app, "UPDATE users SET password_hash = :h WHERE id = :i", h=weak, i=person.id)
    login(app.test_client(), person.email)
    [(stored,)] = sql(app, "SELECT password_hash FROM users WHERE id = :i", i=person.id)
    assert stored.startswith("$argon2id$") and stored != weak and "m=65536" in stored


@pytest.mark.parametrize("password, message", [
    ("short-pass1", "at least 12 characters"),
    ("123456789012", "too common"),
    ("aaaaaaaaaaaaaaaa", "too common"),
    ("Password1234!", "too common"),
    ("qwerty123456", "too common"),
    ("dragondragondragon", "too common"),
    ("x" * 1025, "at most 1024"),
])
def test_password_rules(password, message):
    from portal.security.passwords import problem
    assert message in problem(password)


def test_long_passphrases_are_allowed_and_no_composition_rules():
    from portal.security.passwords import problem
    assert problem("correct horse battery staple " * 4) is None  # 116 characters
    assert problem("just lowercase words here") is None


# --- sign-in errors and throttling -----------------------------------------------------------

def test_unknown_account_and_wrong_password_look_and_take_the_same(app, person):
    client = app.test_client()
    timings = {"wrong": [], "unknown": []}
    for _ in range(4):
        for kind, email in (("wrong", person.email), ("unknown", "nobody-here@example.com")):
            token = csrf_from(client.get("/login").get_data(as_text=True))
            start = time.perf_counter()
            r = client.post("/login", data={"email": email, "password": "not the password", "csrf_token": token})
            timings[kind].append(time.perf_counter() - start)
            assert r.status_code == 401 and "do not match an account" in r.get_data(as_text=True)
    ratio = statistics.median(timings["wrong"]) / statistics.median(timings["unknown"])
    assert 0.5 < ratio < 2.0, timings


def test_account_lockout_is_bounded_and_spares_known_browsers(app, person):
    known = app.test_client()
    login(known, person.email)  # this browser has signed in before: it carries a device cookie
    known.post("/logout", data={"csrf_token": csrf_token(known)})
    attacker = app.test_client()
    for _ in range(10):
        assert attempt(attacker, person.email, "guess-guess-guess").status_code == 401
    blocked = attempt(attacker, person.email, PASSWORD)  # even the right password waits
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.get_data(as_text=True)
    assert int(blocked.headers["Retry-After"]) <= 15 * 60
    # An unknown account gets the same treatment: the lock tells nothing about existence.
    for _ in range(10):
        attempt(attacker, "ghost@example.com", "guess-guess-guess")
    assert attempt(attacker, "ghost@example.com", "x").status_code == 429
    # The owner's usual browser is not locked out.
    assert attempt(known, person.email, PASSWORD).status_code == 303
    # And the lock lifts as the failures age out of the window.
    sql(app, "UPDATE login_events SET created_at = created_at - interval '16 minutes' WHERE lower(email) = :e",
        as_user=person.id, e=person.email)
    assert attempt(app.test_client(), person.email, PASSWORD).status_code == 303


def test_per_address_limit(db_urls, app, person):
    limited = make_app(db_urls, RATELIMIT_LOGIN="3 per minute")
    client = limited.test_client()
    codes = [attempt(client, f"someone{i}@example.com", "nope").status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]


def test_login_history_on_the_profile(app, person):
    client = app.test_client()
    attempt(client, person.email, "wrong-wrong-wrong")
    login(client, person.email)
    page = client.get("/account/sessions").get_data(as_text=True)
    assert "failed: wrong password" in page and "success" in page


# --- sessions --------------------------------------------------------------------------------

def session_rows(app, user_id):
    with app.app_context(), user_scope(db.session, user_id):
        return db.session.scalars(sa.select(UserSession).where(UserSession.user_id == user_id)
                                  .order_by(UserSession.created_at)).all()


def test_session_id_is_random_rotated_and_stored_hashed(app, person):
    client = app.test_client()
    client.get("/login")
    login(client, person.email)
    with client.session_transaction() as s:
        first = s["sid"]
    login(app.test_client(), person.email)
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    login(client, person.email)
    with client.session_transaction() as s:
        second = s["sid"]
    assert first != second and len(first) >= 43  # 256 bits
    stored = [r.token_hash for r in session_rows(app, person.id)]
    assert all(len(h) == 32 for h in stored) and first.encode() not in stored


def test_cookie_flags(app, db_urls):
    response = app.test_client().get("/login")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    prod = make_app(db_urls, PORTAL_ENV="production", BASE_URL="https://portal.example.com")
    prod_cookie = prod.test_client().get("/login", base_url="https://portal.example.com").headers["Set-Cookie"]
    assert prod_cookie.startswith("__Host-portal=") and "Secure" in prod_cookie and "Path=/" in prod_cookie
    assert "Domain" not in prod_cookie
    hsts = prod.test_client().get("/login").headers["Strict-Transport-Security"]
    assert "max-age=31536000" in hsts


def test_idle_and_absolute_timeouts(app, member):
    person, tenant = member
    idle, old = app.test_client(), app.test_client()
    login(idle, person.email)
    login(old, person.email)
    first, second = session_rows(app, person.id)[-2:]
    sql(app, "UPDATE user_sessions SET last_seen_at = now() - interval '31 minutes' WHERE id = :i", person.id,
        i=first.id)
    sql(app, "UPDATE user_sessions SET expires_at = now() - interval '1 second' WHERE id = :i", person.id,
        i=second.id)
    for client in (idle, old):
        assert client.get(f"/t/{tenant['slug']}/").headers["Location"].startswith("/login")


def test_profile_revokes_other_sessions(app, person):
    mine, other = app.test_client(), app.test_client()
    login(other, person.email)
    login(mine, person.email)
    page = mine.get("/account/sessions").get_data(as_text=True)
    assert page.count("data-session=") == 2 and "this browser</span>" in page and page.count('aria-current="true"') == 1
    mine.post("/account/sessions/revoke-others", data={"csrf_token": csrf_token(mine)})
    assert other.get("/account/profile").status_code == 302 and mine.get("/account/profile").status_code == 200


def test_password_change_ends_other_sessions_and_needs_the_current_password(app, person):
    mine, other = app.test_client(), app.test_client()
    login(other, person.email)
    login(mine, person.email)
    new = "a brand new passphrase"
    r = mine.post("/account/password", data={"current": "wrong", "password": new, "confirm": new,
                                              "csrf_token": csrf_token(mine)})
    assert r.status_code == 422 and "not your current password" in r.get_data(as_text=True)
    r = mine.post("/account/password", data={"current": PASSWORD, "password": new, "confirm": new,
                                              "csrf_token": csrf_token(mine)})
    assert r.status_code == 303
    assert other.get("/account/profile").status_code == 302 and mine.get("/account/profile").status_code == 200
    login(app.test_client(), person.email, new)


def test_disabling_a_user_ends_all_their_sessions(app, person):
    client = app.test_client()
    login(client, person.email)
    result = app.test_cli_runner().invoke(args=["users", "disable", person.email.upper()])
    assert result.exit_code == 0 and "1 session(s) ended" in result.output
    assert client.get("/account/profile").status_code == 302
    assert attempt(app.test_client(), person.email, "wrong password").status_code == 401
    refused = attempt(app.test_client(), person.email, PASSWORD)  # suspended: said after the right password
    assert refused.status_code == 403 and "Your account is suspended" in refused.get_data(as_text=True)
    assert app.test_cli_runner().invoke(args=["users", "enable", person.email]).exit_code == 0
    login(app.test_client(), person.email)
    assert app.test_cli_runner().invoke(args=["users", "disable", "nobody@example.com"]).exit_code != 0


def test_tenant_policy_caps_sessions_and_shortens_idle_time(app, member):
    person, tenant = member
    sql(app, """UPDATE tenants SET settings = '{"security": {"max_sessions": 2, "idle_timeout_minutes": 5}}'
                WHERE id = :i""", i=tenant["id"])
    clients = [app.test_client() for _ in range(3)]
    for c in clients:
        login(c, person.email)
    assert clients[0].get("/account/profile").status_code == 302  # the oldest was signed out
    assert clients[2].get(f"/t/{tenant['slug']}/").status_code == 200
    newest = session_rows(app, person.id)[-1]
    sql(app, "UPDATE user_sessions SET last_seen_at = now() - interval '10 minutes' WHERE id = :i", person.id,
        i=newest.id)
    r = clients[2].get(f"/t/{tenant['slug']}/")
    assert r.status_code == 303 and r.headers["Location"].startswith("/login")


# --- password reset and email verification ---------------------------------------------------

@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


def reset_link(smtp, email):
    [message] = smtp.inbox.wait_for(1, email)
    text = message.get_body(preferencelist=("plain",)).get_content()
    return re.search(r"https://portal\.example\.com(/password/reset/[A-Za-z0-9_-]+)", text).group(1)


def test_password_reset(db_urls, app, person, smtp):
    mail_app = make_app(db_urls, SMTP_URL=smtp.url, BASE_URL="https://portal.example.com")
    client, other = mail_app.test_client(), mail_app.test_client()
    login(other, person.email)

    def ask(email):
        page = client.get("/password/forgot").get_data(as_text=True)
        r = client.post("/password/forgot", data={"email": email, "csrf_token": csrf_from(page)}, buffered=True)
        return r.status_code, client.get(r.headers["Location"]).get_data(as_text=True)

    known, unknown = ask(person.email), ask("no-such-person@example.com")
    assert known[0] == unknown[0] == 303
    assert "If an account uses that address" in known[1] and "If an account uses that address" in unknown[1]
    path = reset_link(smtp, person.email)
    assert smtp.inbox.to("no-such-person@example.com") == []

    page = client.get(path)
    assert page.status_code == 200 and page.headers["Referrer-Policy"] == "no-referrer"
    assert client.get(path).status_code == 200  # GET consumes nothing
    token = csrf_from(page.get_data(as_text=True))
    weak = client.post(path, data={"password": "password1234", "confirm": "password1234", "csrf_token": token})
    assert weak.status_code == 422
    new = "reset to something long"
    done = client.post(path, data={"password": new, "confirm": new, "csrf_token": token})
    assert done.status_code == 303
    assert client.get(path).status_code == 410  # single use
    assert other.get("/account/profile").status_code == 302  # every session ended
    login(mail_app.test_client(), person.email, new)


@pytest.mark.parametrize("portal_env, base", [("testing", "http://localhost"),
                                               ("development", "http://127.0.0.1:5000")])
def test_reset_links_never_come_from_the_host_header(db_urls, app, person, smtp, monkeypatch, portal_env, base):
    """BASE_URL unset (the `make run` default): the emailed link points at the portal's own address
    (where `make run` serves in development), whatever Host the request claimed."""
    monkeypatch.delenv("BASE_URL", raising=False)
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    mail_app = make_app(db_urls, SMTP_URL=smtp.url, PORTAL_ENV=portal_env)
    assert mail_app.config["BASE_URL"] == base
    client = mail_app.test_client()
    page = client.get("/password/forgot", base_url="http://evil.example").get_data(as_text=True)
    r = client.post("/password/forgot", data={"email": person.email, "csrf_token": csrf_from(page)},
                    base_url="http://evil.example", headers={"X-Forwarded-Host": "evil.example"}, buffered=True)
    assert r.status_code == 303
    [message] = smtp.inbox.wait_for(1, person.email)
    for part in ("plain", "html"):
        body = message.get_body(preferencelist=(part,)).get_content()
        assert "evil.example" not in body
        assert re.search(re.escape(base) + r"/password/reset/[A-Za-z0-9_-]+", body), body


def test_reset_link_expires_after_an_hour(db_urls, app, person, smtp):
    mail_app = make_app(db_urls, SMTP_URL=smtp.url, BASE_URL="https://portal.example.com")
    client = mail_app.test_client()
    page = client.get("/password/forgot").get_data(as_text=True)
    client.post("/password/forgot", data={"email": person.email, "csrf_token": csrf_from(page)}, buffered=True)
    path = reset_link(smtp, person.email)
    with mail_app.app_context(), user_scope(db.session, person.id):
        expiry = db.session.scalar(sa.select(AccountToken.expires_at).where(AccountToken.user_id == person.id)
                                   .order_by(AccountToken.created_at.desc()))
        created = db.session.scalar(sa.select(AccountToken.created_at).where(AccountToken.user_id == person.id)
                                    .order_by(AccountToken.created_at.desc()))
    assert timedelta(minutes=59) < expiry - created <= timedelta(hours=1, seconds=5)
    sql(mail_app, "UPDATE account_tokens SET expires_at = now() - interval '1 second' WHERE user_id = :u",
        person.id, u=person.id)
    assert client.get(path).status_code == 410


def test_email_change_needs_reauthentication_and_verification(db_urls, app, person, smtp):
    mail_app = make_app(db_urls, SMTP_URL=smtp.url, BASE_URL="https://portal.example.com")
    client = mail_app.test_client()
    login(client, person.email)
    sql(mail_app, "UPDATE user_sessions SET reauth_at = now() - interval '1 hour' WHERE user_id = :u", person.id,
        u=person.id)
    new_email = f"renamed-{person.id.hex[:8]}@example.com"
    r = client.post("/account/email", data={"email": new_email, "csrf_token": csrf_token(client)})
    assert r.headers["Location"].startswith("/account/confirm")
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    r = client.post(r.headers["Location"], data={"password": "wrong", "csrf_token": csrf_from(page)})
    assert r.status_code == 401
    r = client.post("/account/confirm?next=/account/", data={"password": PASSWORD, "csrf_token": csrf_from(page)})
    assert r.status_code == 303
    r = client.post("/account/email", data={"email": new_email, "csrf_token": csrf_token(client)}, buffered=True)
    assert r.status_code == 303
    [message] = smtp.inbox.wait_for(1, new_email)
    assert smtp.inbox.wait_for(1, person.email)  # the old address is told
    path = re.search(r"https://portal\.example\.com(/account/verify/[A-Za-z0-9_-]+)",
                     message.get_body(preferencelist=("plain",)).get_content()).group(1)
    assert client.get(path).status_code == 200
    with mail_app.app_context():
        assert db.session.get(User, person.id).email == person.email  # GET changed nothing
    client.post(path, data={"csrf_token": csrf_token(client)})
    with mail_app.app_context():
        assert db.session.get(User, person.id).email == new_email


# --- two-factor ------------------------------------------------------------------------------

def enrol(client) -> tuple[str, list[str]]:
    page = client.get("/account/two-factor").get_data(as_text=True)
    secret = re.search(r"<code data-secret>([A-Z2-7]+)</code>", page).group(1)
    # An SVG image renders only with its namespace (the browser test scans it).
    assert 'src="data:image/svg+xml;charset=utf-8,%3Csvg%20xmlns%3D%27http%3A%2F%2Fwww.w3.org%2F2000%2Fsvg%27' in page
    r = client.post("/account/two-factor", data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_from(page)})
    assert r.status_code == 303  # POST-redirect-GET: the codes are shown by the GET, once
    r = client.get(r.headers["Location"])
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    codes = re.findall(r"<li><code>([0-9a-f]{6}-[0-9a-f]{6})</code></li>", r.get_data(as_text=True))
    again = client.get("/account/two-factor/backup-codes").get_data(as_text=True)
    assert codes and not any(c in again for c in codes) and "These codes were shown once" in again
    return secret, codes


def second_factor(client, code):
    page = client.get("/login/verify").get_data(as_text=True)
    return client.post("/login/verify", data={"code": code, "csrf_token": csrf_from(page)})


def test_totp_enrolment_and_sign_in(app, person):
    client = app.test_client()
    login(client, person.email)
    secret, codes = enrol(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    with app.app_context():
        stored = db.session.get(User, person.id).totp_secret
    assert secret.encode() not in stored  # encrypted at rest
    fresh = app.test_client()
    r = attempt(fresh, person.email, PASSWORD)
    assert r.headers["Location"] == "/login/verify"
    assert fresh.get("/account/profile").status_code == 302  # not signed in yet
    assert second_factor(fresh, "000000").status_code == 401
    sql(app, "UPDATE users SET totp_last_step = 0 WHERE id = :i", i=person.id)
    code = pyotp.TOTP(secret).now()
    assert second_factor(fresh, code).status_code == 303
    assert fresh.get("/account/profile").status_code == 200
    again = app.test_client()
    attempt(again, person.email, PASSWORD)
    assert second_factor(again, code).status_code == 401  # a code works once
    assert second_factor(again, codes[0]).status_code == 303  # a backup code
    third = app.test_client()
    attempt(third, person.email, PASSWORD)
    assert second_factor(third, codes[0]).status_code == 401  # ...once


def wrong_code(secret: str) -> str:
    """Six digits that match none of the codes the server accepts right now."""
    totp, now = pyotp.TOTP(secret), time.time()
    valid = {totp.at(now + offset) for offset in (-60, -30, 0, 30, 60)}
    return next(c for c in (f"{n:06d}" for n in range(123456, 999999, 7919)) if c not in valid)


def test_second_factor_limit_holds_for_a_known_browser(app, person):
    """A browser with the device cookie is spared the password's lockout, never the code's:
    past LOGIN_MAX_FAILURES wrong codes it gets 429, and even a right code or backup code waits."""
    client = app.test_client()
    login(client, person.email)
    secret, codes = enrol(client)
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    assert client.get_cookie("portal_device") is not None  # a known browser
    assert attempt(client, person.email, PASSWORD).headers["Location"] == "/login/verify"
    bad = wrong_code(secret)
    for _ in range(10):
        assert second_factor(client, bad).status_code == 401
    for _ in range(3):  # not a single answer more, however often it asks
        limited = second_factor(client, bad)
        assert limited.status_code == 429 and "Too many failed attempts" in limited.get_data(as_text=True)
        assert 0 < int(limited.headers["Retry-After"]) <= 15 * 60
    sql(app, "UPDATE users SET totp_last_step = 0 WHERE id = :i", i=person.id)
    assert second_factor(client, pyotp.TOTP(secret).now()).status_code == 429  # the right code waits too
    assert second_factor(client, codes[0]).status_code == 429  # and a backup code
    assert client.get("/account/profile").status_code == 302  # still not signed in
    with app.app_context():  # nothing was consumed while limited
        assert db.session.get(User, person.id).totp_last_step == 0
    # An unknown browser with the password is stopped already at the password: codes count there too.
    assert attempt(app.test_client(), person.email, PASSWORD).status_code == 429
    # Once the failures age out of the window, the right code works again.
    sql(app, "UPDATE login_events SET created_at = created_at - interval '16 minutes' WHERE lower(email) = :e",
        as_user=person.id, e=person.email)
    assert second_factor(client, codes[0]).status_code == 303


def test_second_factor_limit_holds_when_reentering_the_password(app, person):
    """/account/confirm checks the code too: wrong codes there count and are limited the same way."""
    client = app.test_client()
    login(client, person.email)
    secret, _ = enrol(client)
    page = client.get("/account/confirm").get_data(as_text=True)
    bad = wrong_code(secret)
    for _ in range(10):
        r = client.post("/account/confirm", data={"password": PASSWORD, "code": bad, "csrf_token": csrf_from(page)})
        assert r.status_code == 401
    sql(app, "UPDATE users SET totp_last_step = 0 WHERE id = :i", i=person.id)
    r = client.post("/account/confirm", data={"password": PASSWORD, "code": pyotp.TOTP(secret).now(),
                                               "csrf_token": csrf_from(page)})
    assert r.status_code == 429 and "Too many failed attempts" in r.get_data(as_text=True)
    # Signing in again from this known browser is held at the code as well.
    fresh = app.test_client()
    fresh.set_cookie("portal_device", client.get_cookie("portal_device").value)
    attempt(fresh, person.email, PASSWORD)
    assert second_factor(fresh, pyotp.TOTP(secret).now()).status_code == 429


def test_tenant_can_require_two_factor(app, member):
    person, tenant = member
    sql(app, """UPDATE tenants SET settings = '{"security": {"require_mfa": true}}' WHERE id = :i""", i=tenant["id"])
    client = app.test_client()
    login(client, person.email)
    r = client.get(f"/t/{tenant['slug']}/")
    assert r.status_code == 303 and r.headers["Location"].startswith("/account/two-factor")
    enrol(client)
    assert client.get(f"/t/{tenant['slug']}/").status_code == 200


# --- forms and headers -----------------------------------------------------------------------

def test_csrf_is_required_for_htmx_requests_too(app, member):
    person, tenant = member
    client = app.test_client()
    login(client, person.email)
    r = client.post("/tenants/switch", data={"slug": tenant["slug"]}, headers={"HX-Request": "true"})
    assert r.status_code == 400
    r = client.post("/tenants/switch", data={"slug": tenant["slug"]},
                    headers={"HX-Request": "true", "X-CSRFToken": csrf_token(client)})
    assert r.status_code == 200


def test_no_state_changes_on_get(app):
    """Every route that changes state is POST-only: GET on them is 405 (or they take GET as a read)."""
    writers = [r for r in app.url_map.iter_rules() if "POST" in r.methods and "GET" not in r.methods]
    assert writers
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods:
            view = app.view_functions[rule.endpoint]
            name = view.__name__
            assert not re.search(r"(delete|remove|revoke|disable|cancel|suspend|logout|switch)", name), rule


def test_per_address_limit_is_shared_across_processes_with_redis(db_urls, app):
    """Two app instances (as two gunicorn workers) count failures together in Redis."""
    import socket
    import uuid as _uuid
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    shared = {"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379", "RATELIMIT_LOGIN": "3 per minute",
              "RATELIMIT_KEY_PREFIX": f"portal-test-{_uuid.uuid4().hex}"}
    first, second = make_app(db_urls, **shared), make_app(db_urls, **shared)
    codes = [attempt(first.test_client(), "a@example.com", "nope").status_code,
             attempt(second.test_client(), "b@example.com", "nope").status_code,
             attempt(first.test_client(), "c@example.com", "nope").status_code,
             attempt(second.test_client(), "d@example.com", "nope").status_code]
    assert codes == [401, 401, 401, 429]
    import redis
    # The counts live in Redis, not in a process: that is what another worker sees.
    assert list(redis.Redis(host="127.0.0.1", port=6379).scan_iter("*" + shared["RATELIMIT_KEY_PREFIX"] + "*"))


def test_reentering_the_password_is_throttled(app, person):
    client = app.test_client()
    login(client, person.email)
    page = client.get("/account/confirm").get_data(as_text=True)
    for _ in range(10):
        assert client.post("/account/confirm", data={"password": "guess-guess", "csrf_token": csrf_from(page)}
                           ).status_code == 401
    r = client.post("/account/confirm", data={"password": PASSWORD, "csrf_token": csrf_from(page)})
    assert r.status_code == 429 and "Too many failed attempts" in r.get_data(as_text=True)
    new = "another long passphrase"
    r = client.post("/account/password", data={"current": PASSWORD, "password": new, "confirm": new,
                                                "csrf_token": csrf_token(client)})
    assert r.status_code == 429
