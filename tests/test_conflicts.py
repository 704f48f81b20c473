"""What a person sees when a write loses to another one (database.conflicts): a lock that is not
granted in time is a fast, clear error, the request is repeated once at the edge, and nothing is
written twice. The lock is held for real, by another connection."""
from __future__ import annotations

import threading
import time

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from conftest import csrf_token, login, make_app

from portal import metrics
from portal.database.context import tenant_scope
from portal.database.provision import libpq_url
from portal.extensions import db
from portal.invitations.models import Invitation


@pytest.fixture(scope="module")
def quick_app(db_urls, app):
    """The session's database, with a lock timeout of two seconds."""
    return make_app(db_urls, DB_LOCK_TIMEOUT="2s")


def _retries() -> float:
    return sum(s.value for m in metrics.REQUEST_RETRIES.collect() for s in m.samples if s.name.endswith("_total"))


def _hold_tenant_lock(db_urls, tenant_id, seconds: float, held: threading.Event):
    # As the superuser, in the test database: another session, not another request of the app.
    url = make_url(db_urls["admin"]).set(database=make_url(db_urls["app"]).database)
    with psycopg.connect(libpq_url(url.render_as_string(hide_password=False))) as conn:
        conn.execute("SELECT 1 FROM tenants WHERE id = %s FOR UPDATE", (tenant_id,))
        held.set()
        time.sleep(seconds)
        conn.rollback()


def _invite(client, slug, email, token):
    return client.post(f"/t/{slug}/invitations/", data={"emails": email, "role": "member", "csrf_token": token})


def _invitations(app, tenant_id, email):
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        return db.session.scalar(sa.select(sa.func.count()).select_from(Invitation).where(
            Invitation.tenant_id == tenant_id, Invitation.email == email))


def _owner_while_locked(app, db_urls, world, seconds: float):
    """The owner's client and CSRF token, once another connection holds the tenant row for `seconds`."""
    client = app.test_client()
    login(client, world["users"]["owner"].email)
    token = csrf_token(client)
    held = threading.Event()
    holder = threading.Thread(target=_hold_tenant_lock, args=(db_urls, world["a"]["id"], seconds, held))
    holder.start()
    assert held.wait(10), "the other connection never took the tenant lock"
    return client, token, holder


def test_a_lock_held_too_long_is_a_fast_try_again_and_nothing_is_written(quick_app, db_urls, world):
    a = world["a"]
    client, token, holder = _owner_while_locked(quick_app, db_urls, world, 6)
    retries = _retries()
    started = time.monotonic()
    response = _invite(client, a["slug"], "late@example.com", token)
    took = time.monotonic() - started
    holder.join()
    page = response.get_data(as_text=True)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "Please try again" in page and "not answering" not in page
    assert 3.9 < took < 6, took  # two attempts of two seconds each, not a hung worker
    assert _retries() == retries + 1
    assert _invitations(quick_app, a["id"], "late@example.com") == 0


def test_the_second_attempt_succeeds_once_the_lock_is_released_and_writes_once(quick_app, db_urls, world):
    a = world["a"]
    # Released after 3 s: the first attempt gave up at 2 s, the second gets the lock.
    client, token, holder = _owner_while_locked(quick_app, db_urls, world, 3)
    retries = _retries()
    response = _invite(client, a["slug"], "patient@example.com", token)
    holder.join()
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    assert _retries() == retries + 1
    assert _invitations(quick_app, a["id"], "patient@example.com") == 1
    # The flash of the attempt that counted, once.
    assert client.get(response.headers["Location"]).get_data(as_text=True).count("patient@example.com") >= 1


def test_the_api_says_try_again_as_problem_details(quick_app, db_urls, world):
    from test_api import token_for
    a = world["a"]
    http = quick_app.test_client()
    token = token_for(quick_app, http, a["id"], ["sites:write", "sites:view"])
    held = threading.Event()
    holder = threading.Thread(target=_hold_tenant_lock, args=(db_urls, a["id"], 6, held))
    holder.start()
    assert held.wait(10), "the other connection never took the tenant lock"
    response = http.post("/api/v1/sites", json={"name": "Blocked", "timezone": "UTC"},
                         headers={"Authorization": f"Bearer {token}"})
    holder.join()
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.mimetype == "application/problem+json"
    assert "try again" in response.get_json()["detail"]
