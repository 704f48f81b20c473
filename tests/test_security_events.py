"""Account security events (seed 004): recorded with severity, address, browser and request id;
each user reads their own on /account; system admins read everyone's on /admin/security-events;
the database lets the serving role read nobody else's."""
from __future__ import annotations

import re

import pyotp
import pytest
import sqlalchemy as sa

from conftest import PASSWORD, csrf_from, csrf_token, login
from portal.accounts.models import UserType


@pytest.fixture
def serving(db_urls):
    engine = sa.create_engine(db_urls["app"], poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def events_as(serving, user_id=None, where: str = "", **params):
    with serving.begin() as conn:
        conn.execute(sa.text("SELECT set_config('app.user_id', :u, true)"), {"u": str(user_id or "")})
        return conn.execute(sa.text(f"SELECT event, severity, email, details, ip_address::text AS ip, user_agent, "
                                    f"request_id FROM security_events {where} ORDER BY created_at"), params).all()


def bad_login(client, email):
    page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"email": email, "password": "wrong password!", "csrf_token": csrf_from(page)},
                headers={"User-Agent": "Sneaky/2.0", "X-Request-ID": "req-bad-1"})


def test_sign_ins_are_recorded_and_shown_on_the_account_page(app, factory, serving):
    person = factory.user(name="Sam Secure")
    client = app.test_client()
    bad_login(client, person.email)
    login(client, person.email)
    rows = events_as(serving, person.id)
    assert [(r.event, r.severity) for r in rows] == [("signin.failure", "warning"), ("signin.success", "info")]
    failure = rows[0]
    assert failure.details == {"method": "password", "reason": "bad_password"}
    assert failure.ip == "127.0.0.1/32" and failure.user_agent == "Sneaky/2.0" and failure.request_id == "req-bad-1"
    page = client.get("/account/activity").get_data(as_text=True)
    activity = page[page.index("Security activity"):]
    assert "Sign-in failed (wrong password)" in activity and "Sneaky/2.0" in activity and "Signed in" in activity


def test_account_changes_are_recorded(app, factory, serving):
    person = factory.user(name="Casey Changes")
    client = app.test_client()
    login(client, person.email)
    new = "a much longer passphrase 42"
    r = client.post("/account/password", data={"current": PASSWORD, "password": new, "confirm": new,
                                               "csrf_token": csrf_token(client)})
    assert r.status_code == 303
    page = client.get("/account/two-factor").get_data(as_text=True)
    secret = re.search(r"<code data-secret>([A-Z2-7]+)</code>", page).group(1)
    assert client.post("/account/two-factor", data={"code": pyotp.TOTP(secret).now(),
                                                    "csrf_token": csrf_from(page)}).status_code == 303
    assert client.post("/account/two-factor/disable", data={"csrf_token": csrf_token(client)}).status_code == 303
    assert client.post("/logout", data={"csrf_token": csrf_token(client)}).status_code == 303
    result = app.test_cli_runner().invoke(args=["users", "disable", person.email])
    assert result.exit_code == 0, result.output
    kinds = [(r.event, r.severity) for r in events_as(serving, person.id)]
    assert kinds == [("signin.success", "info"), ("password.change", "info"), ("mfa.enable", "info"),
                     ("mfa.disable", "warning"), ("signout", "info"), ("account.suspend", "critical")]


def test_each_user_reads_only_their_own(app, factory, serving):
    alice, bob = factory.user(name="Alice"), factory.user(name="Bob")
    for person in (alice, bob):
        login(app.test_client(), person.email)
    assert {r.email for r in events_as(serving, alice.id)} == {alice.email}
    assert events_as(serving, None) == []  # no user set: no rows
    with pytest.raises(sa.exc.DBAPIError, match="permission denied"):
        with serving.begin() as conn:
            conn.execute(sa.text("SELECT set_config('app.user_id', :u, true)"), {"u": str(alice.id)})
            conn.execute(sa.text("DELETE FROM security_events WHERE user_id = :u"), {"u": alice.id})
    with pytest.raises(sa.exc.DBAPIError, match="permission denied"):
        with serving.begin() as conn:
            conn.execute(sa.text("SELECT set_config('app.user_id', :u, true)"), {"u": str(alice.id)})
            conn.execute(sa.text("UPDATE security_events SET severity = 'info' WHERE user_id = :u"), {"u": alice.id})


def test_system_admins_read_everyones_events_with_filters(app, factory, serving):
    admin = factory.user(name="Ada Admin", user_type=UserType.SYSTEM_ADMIN)
    target = factory.user(name="Terry Target")
    bad_login(app.test_client(), target.email)
    assert {r.email for r in events_as(serving, admin.id, "WHERE email = :e", e=target.email)} == {target.email}
    # A regular user sees the page as not existing; an admin sees it.
    regular = app.test_client()
    login(regular, factory.user().email)
    assert regular.get("/admin/security-events").status_code == 404
    client = app.test_client()
    login(client, admin.email)
    page = client.get(f"/admin/security-events?q={target.email}&severity=warning").get_data(as_text=True)
    assert target.email in page and "Sign-in failed (wrong password)" in page and "Sneaky/2.0" in page
    critical = client.get(f"/admin/security-events?q={target.email}&severity=critical").get_data(as_text=True)
    assert "No events match." in critical and "<strong>" + target.email not in critical
    bad = client.get("/admin/security-events?from=soon&event=nonsense&after=%%%")
    assert bad.status_code == 200 and "is not a date" in bad.get_data(as_text=True)


def test_throttled_sign_ins_are_critical(app, factory, serving):
    target, admin = factory.user(), factory.user(user_type=UserType.SYSTEM_ADMIN)
    client = app.test_client()
    for _ in range(11):
        bad_login(client, target.email)
    rows = events_as(serving, admin.id, "WHERE email = :e", e=target.email)
    assert rows[-1].severity == "critical" and rows[-1].details["reason"] == "throttled"
