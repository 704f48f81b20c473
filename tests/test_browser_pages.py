"""Every page type at 1280 and 390 px as owner, member and viewer, in Chromium.

Each visit fails on a console error (htmx: errors and CSP violations included), a document
wider than the viewport, or a serious or critical axe-core violation. Screenshots of every
page at both widths go to test-artifacts/pages/ (git-ignored). One browser for the session,
one sign-in per role: the role's context visits every page at both widths.
"""
from __future__ import annotations

from pathlib import Path

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from browser_support import RECORD_CSP_VIOLATIONS, TIMEOUT_MS, Tab, sign_in
from conftest import PASSWORD, Factory
from portal.database.context import tenant_scope
from portal.devices.models import Device, DeviceStatus
from portal.extensions import db
from portal.sites.models import SiteAssignment
from portal.tenancy.models import Membership, MembershipRole

pytestmark = pytest.mark.browser

# Not test-results/: pytest-playwright empties that folder when a session starts.
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "pages"
WIDTHS = {"wide": (1280, 900), "phone": (390, 844)}
LONG_NAME = "Unbroken" + "x" * 192  # 200 characters, no space: must wrap, not widen the page


@pytest.fixture(scope="module")
def sweep(app, password_hash):
    """A tenant with an owner, a member (assigned to the first site), a viewer and a member
    without sites; devices in every state, one with a 200-character unbroken name."""
    factory = Factory(app, password_hash)
    users = {role: factory.user(name=f"Sweep {role.title()}") for role in ("owner", "member", "viewer")}
    lonely = factory.user(name="Sweep Lonely")
    t = factory.tenant(members={**users}, sites=2, devices=3, slug=f"sweep-{factory._unique()}",
                       name="Sweep Industries")
    with app.app_context(), tenant_scope(db.session, t["id"]):
        devices = {d.id: d for d in db.session.scalars(sa.select(Device).where(Device.tenant_id == t["id"]))}
        devices[t["devices"][0]].name = LONG_NAME
        devices[t["devices"][1]].status = DeviceStatus.ERROR
        devices[t["devices"][3]].status = DeviceStatus.OFFLINE
        devices[t["devices"][3]].last_seen_at = datetime.now(timezone.utc) - timedelta(days=3)
        for role in ("member", "viewer"):
            db.session.add(SiteAssignment(tenant_id=t["id"], site_id=t["sites"][0], user_id=users[role].id))
        db.session.add(Membership(tenant_id=t["id"], user_id=lonely.id, role=MembershipRole.MEMBER))
        db.session.flush()
        db.session.commit()
    return {"t": t, "users": {**users, "lonely": lonely}}


def pages_for(role: str, t: dict) -> list[tuple[str, str]]:
    """(name, path) of each page type this role opens."""
    base = f"/t/{t['slug']}"
    device, site = t["devices"][0], t["sites"][0]
    pages = [("dashboard", f"{base}/"), ("sites", f"{base}/sites/"), ("site", f"{base}/sites/{site}"),
             ("devices", f"{base}/devices/"), ("devices-filtered", f"{base}/devices/?status=online&sort=status"),
             ("device", f"{base}/devices/{device}"), ("members", f"{base}/members/"),
             ("account", "/account"), ("organizations", "/tenants"), ("mail", "/dev/mail"),
             ("not-found", f"{base}/devices/00000000-0000-0000-0000-000000000000")]
    if role == "lonely":  # a member without sites: the empty states explain why
        return [p for p in pages if p[0] in ("dashboard", "sites", "devices", "members")]
    if role == "owner":
        pages += [("device-new", f"{base}/devices/new"), ("device-edit", f"{base}/devices/{device}/edit"),
                  ("device-import", f"{base}/devices/import"), ("site-new", f"{base}/sites/new"),
                  ("site-edit", f"{base}/sites/{site}/edit"), ("invitations", f"{base}/invitations/"),
                  ("roles", f"{base}/roles/"), ("role-new", f"{base}/roles/new"),
                  ("analytics", f"{base}/analytics/?type=device.status&range=90")]
    return pages


def check_page(tab: Tab, name: str, path: str, width_name: str, role: str, axe) -> list[str]:
    page = tab.page
    tab.console_errors.clear()
    tab.page_errors.clear()
    page.goto(path)
    page.wait_for_load_state("networkidle")
    problems = []
    errors = [m for m in tab.console_errors + tab.page_errors
              # 404 pages are meant to answer 404: Chromium logs the status of the document itself.
              if not (name == "not-found" and "404" in m)]
    problems += [f"console: {m}" for m in errors]
    problems += [f"CSP: {m}" for m in tab.csp_problems()]
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if scroll > inner:
        culprits = page.evaluate("""(inner) => Array.from(document.querySelectorAll('body *'))
            .filter(e => e.getBoundingClientRect().right > inner + 1)
            .filter(e => !(e.parentElement && e.parentElement.getBoundingClientRect().right > inner + 1))
            .slice(0, 5).map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className + ' ' +
                              Math.round(e.getBoundingClientRect().right))""", inner)
        problems.append(f"document is {scroll}px wide in a {inner}px viewport: {culprits}")
    results = axe.run(page, options={"resultTypes": ["violations"]})
    for v in results.response["violations"]:
        if v["impact"] in ("serious", "critical"):
            targets = [n["target"] for n in v["nodes"][:3]]
            problems.append(f"axe {v['impact']} {v['id']}: {v['help']} at {targets}")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{role}-{name}-{width_name}.png"), full_page=True)
    return [f"{role} {name} @{width_name} ({path}): {p}" for p in problems]


@pytest.fixture(scope="module")
def axe():
    from axe_playwright_python.sync_playwright import Axe
    return Axe()


@pytest.mark.parametrize("role", ["owner", "member", "viewer", "lonely"])
def test_every_page_at_both_widths(chromium, live_server, sweep, axe, role):
    context = chromium.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    try:
        tab = Tab(context.new_page())
        sign_in(tab.page, sweep["users"][role].email, PASSWORD)
        problems = []
        for width_name, (w, h) in WIDTHS.items():
            tab.page.set_viewport_size({"width": w, "height": h})
            for name, path in pages_for(role, sweep["t"]):
                problems += check_page(tab, name, path, width_name, role, axe)
        if role == "owner":  # the dark scheme once, at phone width (contrast is axe's to check)
            tab.page.emulate_media(color_scheme="dark")
            for name, path in pages_for(role, sweep["t"]):
                problems += check_page(tab, name, path, "phone-dark", role, axe)
        assert not problems, "\n".join(problems)
    finally:
        context.close()


def test_signed_out_pages(chromium, live_server, axe):
    context = chromium.new_context(base_url=live_server)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    try:
        tab = Tab(context.new_page())
        problems = []
        for width_name, (w, h) in WIDTHS.items():
            tab.page.set_viewport_size({"width": w, "height": h})
            for name, path in [("login", "/login"), ("forgot", "/password/forgot")]:
                problems += check_page(tab, name, path, width_name, "anonymous", axe)
        assert not problems, "\n".join(problems)
    finally:
        context.close()
