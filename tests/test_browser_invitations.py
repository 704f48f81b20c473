"""The invitation journey in Chromium: invite, open the emailed link, create the account, land in the tenant."""
from __future__ import annotations

import threading

import pytest

from conftest import PASSWORD, Factory, make_app
from mailbox import SmtpServer, link_in
from browser_support import RECORD_CSP_VIOLATIONS, TIMEOUT_MS, Tab, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mail_server(db_urls, app, smtp):
    """A live portal whose emails go to the loopback SMTP server; links use its own address. As
    in `make run`, a job worker beside it delivers what the request's own immediate attempt did
    not (that attempt was seen to leave an invitation undelivered about once in seven runs)."""
    from werkzeug.serving import make_server

    from portal.jobs.worker import WorkerThread

    mail_app = make_app(db_urls, SMTP_URL=smtp.url)
    server = make_server("127.0.0.1", 0, mail_app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    mail_app.config["BASE_URL"] = base
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    worker = WorkerThread(mail_app)
    worker.start()
    try:
        yield mail_app, base
    finally:
        worker.stop()
        server.shutdown()
        server.server_close()


def new_tab(chromium, base):
    context = chromium.new_context(base_url=base)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    return context, Tab(context.new_page())


def test_invite_open_the_email_link_create_the_account_and_land_in_the_tenant(chromium, mail_server, smtp,
                                                                              password_hash):
    mail_app, base = mail_server
    f = Factory(mail_app, password_hash)
    owner = f.user(name="Browser Owner")
    tenant = f.tenant(members={"owner": owner}, name="Browser Invite Org", sites=1, devices=0)
    invitee = f"invitee-{f._unique()}@example.com"

    context, tab = new_tab(chromium, base)
    try:
        page = tab.page
        expect = sign_in(page, owner.email, PASSWORD)
        page.goto(f"/t/{tenant['slug']}/invitations/")
        page.get_by_label("Email addresses").fill(invitee)
        page.get_by_label("Role").select_option("member")
        page.get_by_role("button", name="Send invitations").click()
        expect(page.get_by_role("status")).to_contain_text(f"Invitation sent to {invitee}")
        expect(page.locator(f'tr[data-email="{invitee}"]')).to_be_visible()
        tab.assert_no_csp_errors()
    finally:
        context.close()

    [message] = smtp.inbox.wait_for(1, invitee)
    link = base + link_in(message, base)

    context, tab = new_tab(chromium, base)  # the invitee: another browser, not signed in
    try:
        page = tab.page
        page.goto(link)
        expect(page.get_by_role("heading", level=1)).to_have_text("Join Browser Invite Org")
        expect(page.locator("#invited-email")).to_have_value(invitee)
        page.get_by_label("Your name").fill("Ivy Invitee")
        page.get_by_label("Choose a password").fill(PASSWORD)
        page.get_by_label("Repeat the password").fill(PASSWORD)
        page.get_by_role("button", name="Create account and join").click()
        expect(page).to_have_url(f"{base}/t/{tenant['slug']}/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Browser Invite Org")
        expect(page.get_by_role("status")).to_contain_text("Welcome to Browser Invite Org")
        tab.assert_no_csp_errors()
    finally:
        context.close()


def test_system_admin_creates_a_tenant_and_its_first_owner_sees_the_first_steps(chromium, mail_server, smtp,
                                                                                 password_hash):
    from portal.accounts.models import UserType
    mail_app, base = mail_server
    f = Factory(mail_app, password_hash)
    admin = f.user(name="Console Admin", user_type=UserType.SYSTEM_ADMIN)
    slug, first_owner = f"console-{f._unique()}", f"founder-{f._unique()}@example.com"

    context, tab = new_tab(chromium, base)
    try:
        page = tab.page
        expect = sign_in(page, admin.email, PASSWORD)
        page.goto("/admin/tenants")
        page.get_by_role("link", name="New tenant").click()
        page.get_by_label("Name").fill("Console Made Org")
        page.get_by_label("Address (/t/...)").fill(slug)
        page.get_by_label("Plan").select_option("starter")
        page.get_by_label("First owner's email").fill(first_owner)
        page.get_by_role("button", name="Create and invite the owner").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Console Made Org")
        expect(page.locator('tr[data-limit="max_devices"]')).to_contain_text("0 of 500")
        tab.assert_no_csp_errors()
    finally:
        context.close()

    [message] = smtp.inbox.wait_for(1, first_owner)
    link = base + link_in(message, base)
    context, tab = new_tab(chromium, base)
    try:
        page = tab.page
        page.goto(link)
        expect(page.get_by_role("heading", level=1)).to_have_text("Join Console Made Org")
        page.get_by_label("Your name").fill("Fran Founder")
        page.get_by_label("Choose a password").fill(PASSWORD)
        page.get_by_label("Repeat the password").fill(PASSWORD)
        page.get_by_role("button", name="Create account and join").click()
        expect(page).to_have_url(f"{base}/t/{slug}/")
        steps = page.locator(".onboarding")
        expect(steps).to_contain_text("0 of 4 done")
        steps.get_by_role("link", name="Add a site").click()
        page.get_by_label("Name", exact=True).fill("First Site")
        page.get_by_role("button", name="Create site").click()
        page.goto(f"/t/{slug}/")
        expect(page.locator('[data-step="Add a site"]')).to_contain_text("(done)")
        expect(steps).to_contain_text("1 of 4 done")
        steps.get_by_role("button", name="Hide the first steps").click()
        expect(page.locator(".onboarding")).to_have_count(0)
        tab.assert_no_csp_errors()
    finally:
        context.close()
