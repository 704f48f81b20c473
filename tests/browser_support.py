"""Browser fixtures shared by every browser test: Debian's Chromium through Playwright.

Loaded as a plugin from conftest.py so there is exactly one Playwright per session.
Skipped when Chromium is missing, except under CI=true, where a missing browser is a failure.
"""
from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").strip().lower() == "true"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]
CONSULTANT = "consultant@external.com"
CONSULTANT_TENANTS = {"Acme Corporation", "Beta Solutions", "TechStart Inc"}
# The switcher also lists the suspended Gamma Logistics, marked as such.
CONSULTANT_SWITCHER = CONSULTANT_TENANTS | {"Gamma Logistics"}
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


def new_tab(chromium, base_url: str, **options) -> Tab:
    """A page in a browser context of its own (its own cookies; `options` for the context:
    viewport, timezone_id, ...), recording CSP violations. The caller closes `tab.page.context`."""
    context = chromium.new_context(base_url=base_url, **options)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    return Tab(context.new_page())


@contextmanager
def open_tab(chromium, base_url: str, **options):
    """new_tab, closed at the end of the block."""
    tab = new_tab(chromium, base_url, **options)
    try:
        yield tab
    finally:
        tab.page.context.close()


@pytest.fixture
def tab(chromium, live_server):
    with open_tab(chromium, live_server) as t:
        yield t


def sign_in(page, email: str, password: str):
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()  # not "Sign in with a passkey"
    page.wait_for_load_state()
    return expect
