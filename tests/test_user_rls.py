"""A person's own rows (sessions, sign-ins, backup codes, links, passkeys, challenges...) under
row-level security keyed on app.user_id, as the serving role (migration 0028); and the narrow
functions that read across people or before anyone is signed in."""
from __future__ import annotations

import hashlib
import os
import re
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from conftest import SEED_PASSWORD, csrf_token, login
from portal.accounts.models import UserType


@pytest.fixture
def serving(db_urls):
    engine = sa.create_engine(db_urls["app"], poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def as_user(conn, user_id=None) -> None:
    conn.execute(sa.text("SELECT set_config('app.user_id', :u, true), set_config('app.tenant_id', '', true)"),
                 {"u": str(user_id or "")})


# One row of each table for a user: (INSERT ... with :u for the user, UPDATE of a harmless column).
ROWS = {
    "user_sessions": ("INSERT INTO user_sessions (user_id, token_hash, expires_at) "
                      "VALUES (:u, :r, now() + interval '1 hour')", "user_agent = 'changed'"),
    "login_events": ("INSERT INTO login_events (user_id, email, success, reason) VALUES (:u, 'x@example.com', "
                     "true, 'ok')", "reason = 'changed'"),
    "mfa_backup_codes": ("INSERT INTO mfa_backup_codes (user_id, code_hash) VALUES (:u, :r)", "used_at = now()"),
    "account_tokens": ("INSERT INTO account_tokens (user_id, purpose, token_hash, expires_at) "
                       "VALUES (:u, 'reset_password', :r, now() + interval '1 hour')", "used_at = now()"),
    "authenticators": ("INSERT INTO authenticators (user_id, credential_id, credential_public_key, device_type, "
                       "backed_up, friendly_name) VALUES (:u, :r, :r, 'single_device', false, 'Key')",
                       "friendly_name = 'changed'"),
    "webauthn_challenges": ("INSERT INTO webauthn_challenges (purpose, challenge, user_id, expires_at) "
                            "VALUES ('register', :r, :u, now() + interval '5 minutes')", "used_at = now()"),
    "user_avatars": ("INSERT INTO user_avatars (user_id, content, media_type, sha256, width, height) "
                     "VALUES (:u, :r, 'image/png', 'x', 1, 1)", "width = 2"),
    "account_exports": ("INSERT INTO account_exports (user_id) VALUES (:u)", "status = 'failed'"),
}


def insert_own(serving, table: str, user_id) -> None:
    """As the user themselves: what `user_own` lets them write."""
    with serving.begin() as conn:
        as_user(conn, user_id)
        conn.execute(sa.text(ROWS[table][0]), {"u": user_id, "r": os.urandom(32)})


@pytest.fixture
def two_people(factory, serving):
    """Two people, each with one row of every table above, written as themselves."""
    a, b = factory.user(name="Person A"), factory.user(name="Person B")
    for table in ROWS:
        for person in (a, b):
            insert_own(serving, table, person.id)
    return a, b


def count(conn, table: str, user_id=None) -> int:
    where = " WHERE user_id = :u" if user_id else ""
    return conn.execute(sa.text(f"SELECT count(*) FROM {table}{where}"), {"u": user_id}).scalar()


@pytest.mark.parametrize("table", ROWS)
def test_a_person_reads_only_their_own_rows(serving, two_people, table):
    a, b = two_people
    with serving.begin() as conn:
        as_user(conn, a.id)
        assert conn.execute(sa.text(f"SELECT DISTINCT user_id FROM {table}")).scalars().all() == [a.id]
        assert count(conn, table, b.id) == 0
    with serving.begin() as conn:
        as_user(conn, b.id)
        assert count(conn, table, b.id) == 1 and count(conn, table, a.id) == 0


@pytest.mark.parametrize("table", ROWS)
def test_another_persons_rows_cannot_be_changed_or_deleted(serving, two_people, table):
    a, b = two_people
    with serving.begin() as conn:
        as_user(conn, a.id)
        assert conn.execute(sa.text(f"UPDATE {table} SET {ROWS[table][1]} WHERE user_id = :b"),
                            {"b": b.id}).rowcount == 0
        assert conn.execute(sa.text(f"DELETE FROM {table} WHERE user_id = :b"), {"b": b.id}).rowcount == 0
        # Nor handed over: WITH CHECK refuses a row that would become someone else's.
        with pytest.raises(DBAPIError, match="row-level security"):
            with conn.begin_nested():
                conn.execute(sa.text(f"UPDATE {table} SET user_id = :b WHERE user_id = :a"), {"a": a.id, "b": b.id})
    with serving.begin() as conn:
        as_user(conn, b.id)
        assert count(conn, table, b.id) == 1


@pytest.mark.parametrize("table", ROWS)
def test_a_row_for_another_person_cannot_be_inserted(serving, two_people, table):
    a, b = two_people
    with pytest.raises(DBAPIError, match="row-level security"):
        with serving.begin() as conn:
            as_user(conn, a.id)
            conn.execute(sa.text(ROWS[table][0]), {"u": b.id, "r": os.urandom(32)})
    with pytest.raises(DBAPIError, match="row-level security"):
        with serving.begin() as conn:  # nor with nobody signed in
            as_user(conn, None)
            conn.execute(sa.text(ROWS[table][0]), {"u": b.id, "r": os.urandom(32)})


def test_with_no_user_set_nothing_is_readable(serving, two_people):
    with serving.begin() as conn:
        for table in (*ROWS, "notifications", "notification_preferences", "security_events"):
            assert count(conn, table) == 0, table
        assert conn.execute(sa.text("UPDATE user_sessions SET revoked_at = now()")).rowcount == 0


def test_rows_without_a_person_yet_are_narrow(serving, two_people):
    """A failed sign-in on an address with no account may be written by anyone and read by
    nobody; a passwordless sign-in's challenge, made before anyone is known, has no user."""
    a, _ = two_people
    email = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    with serving.begin() as conn:
        as_user(conn, None)
        conn.execute(sa.text("INSERT INTO login_events (email, success, reason) VALUES (:e, false, 'bad_password')"),
                     {"e": email})
        conn.execute(sa.text("INSERT INTO webauthn_challenges (purpose, challenge, expires_at) "
                             "VALUES ('signin', :c, now() + interval '5 minutes')"), {"c": os.urandom(32)})
        assert count(conn, "login_events") == 0
    with serving.begin() as conn:
        as_user(conn, a.id)
        assert conn.execute(sa.text("SELECT count(*) FROM login_events WHERE email = :e"), {"e": email}).scalar() == 0
        # The throttle's count is all anyone learns of them.
        assert conn.execute(sa.text("SELECT failures FROM portal_signin_failures(:e, '{bad_password}', 900)"),
                            {"e": email.upper()}).scalar() == 1
    with pytest.raises(DBAPIError, match="row-level security"):
        with serving.begin() as conn:  # an account's own ceremony always has its account
            conn.execute(sa.text("INSERT INTO webauthn_challenges (purpose, challenge, expires_at) "
                                 "VALUES ('register', :c, now() + interval '5 minutes')"), {"c": os.urandom(32)})


def test_the_new_functions_are_not_executable_by_public(serving):
    names = ("portal_signin_failures", "portal_account_token", "portal_passkey_owner", "portal_account_sessions",
             "portal_prune_signin_history")
    with serving.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE'), "
            "has_function_privilege(current_user, p.oid, 'EXECUTE'), p.prosecdef, "
            "array_to_string(p.proconfig, ',') FROM pg_proc p WHERE p.proname = ANY (:n) ORDER BY 1"),
            {"n": list(names)}).all()
    assert [r[0] for r in rows] == sorted(names)
    for name, public, serving_role, definer, config in rows:
        assert (public, serving_role, definer) == (False, True, True), name
        assert config.startswith("search_path="), name


def test_a_link_is_found_by_its_token_only(serving, factory):
    person = factory.user()
    token_hash = hashlib.sha256(os.urandom(32)).digest()
    with serving.begin() as conn:
        as_user(conn, person.id)
        conn.execute(sa.text("INSERT INTO account_tokens (user_id, purpose, token_hash, expires_at) "
                             "VALUES (:u, 'reset_password', :h, now() + interval '1 hour')"),
                     {"u": person.id, "h": token_hash})
    with serving.begin() as conn:
        as_user(conn, None)
        find = "SELECT user_id FROM portal_account_token(:h, CAST(:p AS account_token_purpose))"
        assert conn.execute(sa.text(find), {"h": token_hash, "p": "reset_password"}).scalar() == person.id
        assert conn.execute(sa.text(find), {"h": token_hash, "p": "verify_email"}).scalar() is None
        assert conn.execute(sa.text(find), {"h": os.urandom(32), "p": "reset_password"}).scalar() is None
        assert count(conn, "account_tokens") == 0  # the table itself still shows nothing


def test_the_console_counts_sessions_only_for_a_system_admin(serving, factory, app):
    person, admin = factory.user(), factory.user(user_type=UserType.SYSTEM_ADMIN)
    insert_own(serving, "user_sessions", person.id)
    with serving.begin() as conn:
        query = sa.text("SELECT active_sessions, last_activity IS NOT NULL FROM portal_account_sessions(:u, 1800)")
        as_user(conn, None)
        assert conn.execute(query, {"u": person.id}).all() == []
        as_user(conn, factory.user().id)  # a regular person asking about someone else
        assert conn.execute(query, {"u": person.id}).all() == []
        as_user(conn, admin.id)
        assert conn.execute(query, {"u": person.id}).all() == [(1, True)]


# --- Seed 003: "Users see only their own sessions", through the pages -----------------------

def _sessions_page(client) -> set[str]:
    html = client.get("/account/sessions").get_data(as_text=True)
    return set(re.findall(r'data-session="([0-9a-f-]{36})"', html))


def test_users_see_only_their_own_sessions(app, serving):
    """Seed 003, with its people: Alice and Bob (Acme) and Charlie (TechStart) each see their own
    sessions, in the database and on /account/sessions; Alice cannot sign Bob out."""
    people = {}
    for email in ("alice@acme.com", "bob@acme.com", "charlie@techstart.io"):
        client = app.test_client()
        login(client, email, SEED_PASSWORD)
        people[email] = client
    with serving.begin() as conn:
        ids = dict(conn.execute(sa.text("SELECT email, id FROM users WHERE email = ANY (:e)"),
                                {"e": list(people)}).all())
    mine = {}
    for email, user_id in ids.items():
        with serving.begin() as conn:
            as_user(conn, user_id)
            rows = conn.execute(sa.text("SELECT id, user_id FROM user_sessions")).all()
        assert rows and {r.user_id for r in rows} == {user_id}, email
        mine[email] = {str(r.id) for r in rows}
    for email, client in people.items():
        shown = _sessions_page(client)
        assert shown and shown <= mine[email], email
        assert not shown & set().union(*(mine[e] for e in people if e != email)), email
    alice, bob = people["alice@acme.com"], people["bob@acme.com"]
    for bob_session in mine["bob@acme.com"]:
        alice.post(f"/account/sessions/{bob_session}/revoke", data={"csrf_token": csrf_token(alice)})
    assert bob.get("/account/sessions").status_code == 200  # still signed in
    assert alice.get("/account/sessions").status_code == 200


# With only app.user_id set, what the person reads of their organizations: tests/test_seed_003.py.


def test_the_console_sees_counts_and_ends_another_persons_sessions(app, factory, serving):
    """The system console reads another account's sessions only as counts (portal_account_sessions)
    and ends them on suspension (as the account, under its own policy)."""
    person = factory.user()
    browsers = [app.test_client() for _ in range(2)]
    for browser in browsers:
        login(browser, person.email)
    console = app.test_client()
    login(console, "admin@system.local", SEED_PASSWORD)
    page = console.get(f"/admin/users/{person.id}").get_data(as_text=True)
    assert re.search(r"Active sessions</dt><dd>2<", page)
    with serving.begin() as conn:  # the console's own session is due a touch in the next request
        admin_id = conn.execute(sa.text("SELECT id FROM users WHERE email = 'admin@system.local'")).scalar()
        as_user(conn, admin_id)
        conn.execute(sa.text("UPDATE user_sessions SET last_seen_at = now() - interval '2 minutes'"))
    response = console.post(f"/admin/users/{person.id}/status", data={
        "action": "suspend", "reason": "Testing", "csrf_token": csrf_token(console)}, follow_redirects=True)
    assert "2 sessions ended" in response.get_data(as_text=True)
    assert all(b.get("/account/profile").status_code == 302 for b in browsers)
    page = console.get(f"/admin/users/{person.id}").get_data(as_text=True)
    assert re.search(r"Active sessions</dt><dd>0<", page) and "none recorded" not in page


def test_changes_are_written_under_the_user_they_were_made_as(app, factory):
    """A change made as one person is flushed before `user_scope` enters another (the signed-in
    admin's session record touched, then the console reads someone else's rows), and a change
    made inside the scope is flushed before leaving it: either way, flushed later, the policy
    would hide the row and the UPDATE would match none."""
    from portal.database.context import set_context, user_scope
    from portal.extensions import db
    from portal.security.models import UserSession
    a, b = factory.user(), factory.user()
    with app.app_context():
        set_context(db.session, user_id=a.id)
        mine = UserSession(user_id=a.id, token_hash=os.urandom(32), expires_at=sa.func.now() + sa.text("interval '1 hour'"))
        db.session.add(mine)
        db.session.flush()
        mine.user_agent = "changed as A"
        with user_scope(db.session, b.id):
            assert db.session.scalar(sa.select(sa.func.count()).select_from(UserSession)) == 0  # B has none
            theirs = UserSession(user_id=b.id, token_hash=os.urandom(32),
                                 expires_at=sa.func.now() + sa.text("interval '1 hour'"))
            db.session.add(theirs)
        db.session.commit()
        for person, row, agent in ((a, mine, "changed as A"), (b, theirs, None)):
            with user_scope(db.session, person.id):
                assert db.session.execute(sa.select(UserSession.user_agent).where(UserSession.id == row.id)).one() \
                    == (agent,)
        db.session.rollback()
