"""Integrations in Chromium: an owner creates a webhook at 390 px through the provider's form,
copies the signing secret from the page shown once, and the list, form, integration page (with a
failed delivery and a sync in its log) and secret page pass the page checks of
test_browser_pages (no console or CSP error, no sideways scroll, no axe serious or critical
violation) at both widths."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from browser_support import RECORD_CSP_VIOLATIONS, TIMEOUT_MS, Tab, sign_in
from conftest import PASSWORD
from test_browser_pages import RECORD_HTMX, check_page, load, sweep_role

from portal.database.context import tenant_scope
from portal.extensions import db
from portal.integrations.models import Integration, LogEntry

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def axe():
    from axe_playwright_python.sync_playwright import Axe
    return Axe()


def test_owner_creates_a_webhook_and_the_pages_pass_the_checks(chromium, live_server, factory, app, axe):
    owner = factory.user(name="Ivy Integrator")
    t = factory.tenant(members={"owner": owner}, slug=f"integ-{factory._unique()}")
    base = f"/t/{t['slug']}/integrations"
    context = chromium.new_context(base_url=live_server, viewport={"width": 390, "height": 844})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_CSP_VIOLATIONS + RECORD_HTMX)
    try:
        tab = Tab(context.new_page())
        page = tab.page
        expect = sign_in(page, owner.email, PASSWORD)
        load(tab, base + "/")
        expect(page.get_by_text("No integrations yet")).to_be_visible()
        page.get_by_role("link", name="Outbound webhook").click()
        page.get_by_label("Name", exact=True).fill("Orders to the ERP")
        page.get_by_label("Endpoint URL").fill("http://127.0.0.1:9/hook")
        page.get_by_label("device.status_changed", exact=False).check()
        page.get_by_label("task.completed", exact=False).check()
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_text("shown only this once")).to_be_visible()
        secret = page.locator("#signing-secret").input_value()
        assert secret.startswith("whsec_")
        problems = check_page(tab, "integration-secret", page.url, "phone", "owner", axe)
        page.get_by_role("link", name="Done").click()
        expect(page.get_by_role("heading", name="Orders to the ERP")).to_be_visible()
        assert secret not in page.content()
        integration_id = page.url.rstrip("/").rsplit("/", 1)[1]
        with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
            db.session.add(LogEntry(tenant_id=t["id"], integration_id=integration_id, kind="delivery",
                                    event_type="device.status_changed", state="failed", attempts=16,
                                    payload={"type": "device.status_changed", "data": {}},
                                    request={"method": "POST", "url": "http://127.0.0.1:9/hook",
                                             "headers": {"webhook-id": "msg_" + "a" * 32}, "body": "{}" * 300},
                                    response={"status": 500, "headers": {"Content-Type": "text/plain"},
                                              "body": "Internal error " + "x" * 300},
                                    error="The endpoint answered 500. Gave up after 16 attempts."))
            db.session.commit()
        pages = [("integrations", base + "/"), ("integration", f"{base}/{integration_id}"),
                 ("integration-edit", f"{base}/{integration_id}/edit"), ("integration-new-source", f"{base}/new/json_source")]
        problems += sweep_role(tab, "owner", pages, axe)
        # The failed delivery opens to its heads and bodies, and offers a replay.
        load(tab, f"{base}/{integration_id}")
        page.locator(".log-entry summary").first.click()
        expect(page.get_by_role("button", name="Replay")).to_be_visible()
        problems += check_page(tab, "integration-log-open", f"{base}/{integration_id}", "phone", "owner", axe)
        assert not problems, "\n".join(problems)
        # Replacing the secret asks first, then shows the new one once.
        page.get_by_role("button", name="Replace the signing secret…").click()
        page.get_by_role("dialog").get_by_role("button", name="Replace the secret").click()
        expect(page.get_by_text("shown only this once")).to_be_visible()
        assert page.locator("#signing-secret").input_value() not in ("", secret)
        tab.assert_no_csp_errors()
        with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
            assert db.session.scalar(sa.select(sa.func.count()).select_from(Integration)) == 1
    finally:
        context.close()
