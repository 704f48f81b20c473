"""The portal in a real browser: Debian's Chromium driven by Playwright against a live server.

Skipped when Chromium is missing, except under CI=true, where a missing browser is a failure.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from conftest import SEED_PASSWORD

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").strip().lower() == "true"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]
CONSULTANT = "consultant@external.com"
CONSULTANT_TENANTS = {"Acme Corporation", "Beta Solutions", "TechStart Inc"}
LOGIN_FAILURE = "That email and password do not match an account."
TIMEOUT_MS = 15_000
DASHBOARD = re.compile(r"/t/([a-z0-9-]+)/$")  # no named group: Playwright compiles it as JS

# CSP violations are recorded by the page itself too: the console text differs between versions.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} ` +
                              `(${e.sourceFile || ''}:${e.lineNumber || 0})`);
});
"""


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: browser tests must run in CI)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = Path(CHROMIUM)
    if not (path.is_file() and os.access(path, os.X_OK)):
        _unavailable(f"Chromium not found at {CHROMIUM} (install Debian's `chromium` or set CHROMIUM_PATH)")
    return str(path)


@pytest.fixture(scope="session")
def live_server(app):
    """The session app served over HTTP from a thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def chromium(chromium_path):
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:  # pragma: no cover - requirements.txt installs it
        _unavailable(f"playwright is not installed: {exc}")
    expect.set_options(timeout=TIMEOUT_MS)
    playwright = sync_playwright().start()
    try:
        try:
            browser = playwright.chromium.launch(executable_path=chromium_path, headless=True,
                                                 args=CHROMIUM_ARGS, timeout=60_000)
        except Exception as exc:
            _unavailable(f"Chromium at {chromium_path} failed to start: {exc}")
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


class Tab:
    """A page in a fresh browser context (no shared cookies) plus what its console reported."""

    def __init__(self, page):
        self.page = page
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def csp_problems(self) -> list[str]:
        problems = [m for m in self.console_errors + self.page_errors
                    if "content security policy" in m.lower() or "content-security-policy" in m.lower()]
        try:
            problems += self.page.evaluate("window.__cspViolations || []")
        except Exception:  # the page may be mid-navigation; the console list still counts
            pass
        return list(dict.fromkeys(problems))  # one line per distinct message

    def assert_no_csp_errors(self):
        problems = self.csp_problems()
        assert not problems, "Content-Security-Policy errors in the browser console:\n" + "\n".join(problems)


@pytest.fixture
def tab(chromium, live_server):
    context = chromium.new_context(base_url=live_server)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    page = context.new_page()
    try:
        yield Tab(page)
    finally:
        context.close()


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


def sign_in(page, email: str, password: str):
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    return expect


def open_switcher(page):
    """Wait for htmx to load the switcher fragment into the header, then open it."""
    menu = page.locator("#tenant-switcher details.switcher-menu")
    menu.locator("summary").wait_for(state="visible")
    menu.locator("summary").click()
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
    expect(page.locator("#tenant-switcher details.switcher-menu summary")).to_have_text(
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
    assert set(switcher_tenant_names(menu)) == CONSULTANT_TENANTS
    with page.expect_response(lambda r: r.url.endswith("/tenants/switch")) as switched:
        menu.get_by_role("button", name=re.compile("TechStart Inc")).click()
    response = switched.value
    assert response.status == 200, f"switch answered {response.status}"
    assert response.headers.get("hx-redirect") == "/t/techstart/"

    expect(page).to_have_url(re.compile(r"/t/techstart/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("TechStart Inc")

    # The reloaded header offers exactly the user's three organizations, marking the current one.
    menu = open_switcher(page)
    expect(menu.locator("summary")).to_have_text("TechStart Inc")
    names = switcher_tenant_names(menu)
    assert sorted(names) == sorted(CONSULTANT_TENANTS), names
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
