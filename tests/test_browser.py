"""The portal in a real browser: Debian's Chromium driven by Playwright against a live server.

Skipped when Chromium is missing, except under CI=true, where a missing browser is a failure.
"""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from browser_support import CONSULTANT, CONSULTANT_SWITCHER, CONSULTANT_TENANTS, DASHBOARD, LOGIN_FAILURE, sign_in
from conftest import SEED_PASSWORD

pytestmark = pytest.mark.browser

@pytest.fixture
def restore_last_tenant(db_urls):
    """Switching tenant remembers it on the user: put the seeded value back for other tests."""
    url = make_url(db_urls["admin"]).set(database=make_url(db_urls["owner"]).database)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    query = sa.text("SELECT last_tenant_id FROM users WHERE lower(email) = :e")
    with engine.connect() as conn:
        before = conn.execute(query, {"e": CONSULTANT}).scalar()
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE users SET last_tenant_id = :t WHERE lower(email) = :e"),
                         {"t": before, "e": CONSULTANT})
        engine.dispose()


def open_switcher(page):
    """Wait for htmx to load the switcher fragment into the header, then open it."""
    menu = page.locator("#tenant-switcher")
    menu.locator("button.switcher-toggle").wait_for(state="visible")
    menu.locator("button.switcher-toggle").click()
    menu.locator("#switcher-list").wait_for(state="visible")
    return menu


def switcher_tenant_names(menu) -> list[str]:
    # Each button reads "<tenant name> <span>role</span>": keep the name only.
    return menu.locator("form button").evaluate_all(
        "buttons => buttons.map(b => b.firstChild.textContent.trim())")


def test_sign_in_lands_on_a_tenant_dashboard(tab):
    page = tab.page
    expect = sign_in(page, CONSULTANT, SEED_PASSWORD)
    expect(page).to_have_url(DASHBOARD)
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_count(1)
    assert heading.inner_text().strip() in CONSULTANT_TENANTS
    # The header switcher is filled by htmx on load: wait for it so its requests count too.
    expect(page.locator("#tenant-switcher button.switcher-toggle")).to_have_text(
        heading.inner_text().strip())
    tab.assert_no_csp_errors()


def test_switch_tenant_with_the_htmx_switcher(tab, restore_last_tenant):
    page = tab.page
    expect = sign_in(page, CONSULTANT, SEED_PASSWORD)
    expect(page).to_have_url(DASHBOARD)
    if DASHBOARD.search(page.url)[1] == "techstart":  # start elsewhere so the switch shows
        page.goto("/t/acme-corp/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Acme Corporation")

    menu = open_switcher(page)
    assert set(switcher_tenant_names(menu)) == CONSULTANT_SWITCHER
    with page.expect_response(lambda r: r.url.endswith("/tenants/switch")) as switched:
        menu.get_by_role("button", name=re.compile("TechStart Inc")).click()
    response = switched.value
    assert response.status == 200, f"switch answered {response.status}"
    assert response.headers.get("hx-redirect") == "/t/techstart/"

    expect(page).to_have_url(re.compile(r"/t/techstart/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("TechStart Inc")

    # The reloaded header offers exactly the user's three organizations, marking the current one.
    menu = open_switcher(page)
    expect(menu.locator("button.switcher-toggle")).to_have_text("TechStart Inc")
    names = switcher_tenant_names(menu)
    assert sorted(names) == sorted(CONSULTANT_SWITCHER), names
    assert "Demo Company" not in menu.inner_text()
    expect(menu.locator("button[aria-current=true]")).to_contain_text("TechStart Inc")
    tab.assert_no_csp_errors()


def test_wrong_password_shows_the_generic_error(tab):
    page = tab.page
    expect = sign_in(page, CONSULTANT, "not-the-password")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_text(LOGIN_FAILURE)).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    tab.assert_no_csp_errors()


def test_sign_out_returns_to_login(tab):
    page = tab.page
    expect = sign_in(page, CONSULTANT, SEED_PASSWORD)
    expect(page).to_have_url(DASHBOARD)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    # Signed out for real: a tenant page sends the browser back to the sign-in form.
    page.goto("/t/acme-corp/")
    expect(page).to_have_url(re.compile(r"/login"))
    tab.assert_no_csp_errors()


def test_sign_in_with_totp(tab, factory, app):
    """A user with two-factor on signs in with password, then an authenticator code."""
    import pyotp

    from conftest import PASSWORD
    from portal.accounts.models import User
    from portal.database.context import user_scope
    from portal.extensions import db
    from portal.security import mfa

    user = factory.user(name="Tina Totp")
    factory.tenant(members={"owner": user}, name="Totp Org", sites=0)
    secret = mfa.new_secret()
    with app.app_context(), app.test_request_context(), user_scope(db.session, user.id):  # as the person (RLS)
        mfa.enable(db.session.get(User, user.id), secret)
        db.session.execute(sa.text("UPDATE users SET totp_last_step = 0 WHERE id = :i"), {"i": user.id})
        db.session.commit()
    page = tab.page
    expect = sign_in(page, user.email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    page.get_by_label("Authentication code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(DASHBOARD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Totp Org")
    tab.assert_no_csp_errors()
