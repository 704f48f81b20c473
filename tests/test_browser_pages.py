"""Every page type at 1280 and 390 px as owner, member, viewer and system admin (the console),
in Chromium.

Each visit fails on a console error (htmx: errors and CSP violations included), an image that
did not decode, an id used twice, text clipped without a title, a document wider than the
viewport, or a serious or critical axe-core violation. Screenshots of every
page at both widths go to test-artifacts/pages/ (git-ignored). One browser for the session,
one sign-in and one context per role. Each page is loaded once: it is checked at 1280 px, then
resized to 390 px and checked again (the layout follows media queries, nothing measures the
width at load); a few representative pages are checked once more in the dark scheme. A page
counts as settled when no htmx request is pending and none started for QUIET_MS, which is
quicker than Playwright's "networkidle" (500 ms of silence after every load).
"""
from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from PIL import Image, ImageDraw

from browser_support import RECORD_CSP_VIOLATIONS, TIMEOUT_MS, Tab, sign_in
from conftest import PASSWORD, Factory
from portal.accounts.models import UserType
from portal.database.context import tenant_scope
from portal.devices.models import Device, DeviceStatus
from portal.extensions import db
from portal.invitations.models import Invitation
from portal.organization.branding import decode_logo
from portal.organization.models import TenantLogo
from portal.tenants.models import Tenant
from portal.sites.models import SiteAssignment
from portal.tenancy.models import Membership, MembershipRole

pytestmark = pytest.mark.browser

# Not test-results/: pytest-playwright empties that folder when a session starts.
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "pages"
WIDTHS = {"wide": (1280, 900), "phone": (390, 844)}
LONG_NAME = "Unbroken" + "x" * 192  # 200 characters, no space: must wrap, not widen the page
# Checked once more in the dark scheme (at 390 px): the charts, a list, a record, forms, the console.
DARK = {"dashboard", "devices", "device", "settings", "admin-tenant", "two-factor"}
QUIET_MS = 150
# Counts the htmx requests in flight, so a page can be called settled without "networkidle".
RECORD_HTMX = """
window.__htmxPending = 0; window.__htmxLast = performance.now();
document.addEventListener('htmx:beforeRequest', () => { window.__htmxPending++; window.__htmxLast = performance.now(); });
document.addEventListener('htmx:afterRequest', () => { window.__htmxPending--; window.__htmxLast = performance.now(); });
"""
SETTLED = f"""() => document.readyState === 'complete' && window.__htmxPending <= 0 &&
                     performance.now() - window.__htmxLast > {QUIET_MS}"""


@pytest.fixture(scope="module")
def sweep(app, password_hash):
    """A tenant with an owner, a member (assigned to the first site), a viewer and a member
    without sites; devices in every state, one with a 200-character unbroken name."""
    factory = Factory(app, password_hash)
    users = {role: factory.user(name=f"Sweep {role.title()}") for role in ("owner", "member", "viewer")}
    lonely = factory.user(name="Sweep Lonely")
    t = factory.tenant(members={**users}, sites=2, devices=3, slug=f"sweep-{factory._unique()}",
                       name="Sweep Industries")
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        devices = {d.id: d for d in db.session.scalars(sa.select(Device).where(Device.tenant_id == t["id"]))}
        devices[t["devices"][0]].name = LONG_NAME
        devices[t["devices"][1]].status = DeviceStatus.ERROR
        devices[t["devices"][3]].status = DeviceStatus.OFFLINE
        devices[t["devices"][3]].last_seen_at = datetime.now(timezone.utc) - timedelta(days=3)
        for role in ("member", "viewer"):
            db.session.add(SiteAssignment(tenant_id=t["id"], site_id=t["sites"][0], user_id=users[role].id))
        db.session.add(Membership(tenant_id=t["id"], user_id=lonely.id, role=MembershipRole.MEMBER))
        # A pending invitation: the invitations table is checked too (stacked rows at 390 px).
        db.session.add(Invitation(tenant_id=t["id"], role=MembershipRole.MEMBER, email="sweep-invitee@example.com",
                                  token_hash=hashlib.sha256(b"sweep").digest(), last_sent_at=datetime.now(UTC),
                                  expires_at=datetime.now(UTC) + timedelta(days=3)))
        # Branding: the header carries the logo and the accent colour on every page of the tenant.
        picture = io.BytesIO()
        drawing = Image.new("RGBA", (240, 80), (0, 0, 0, 0))
        pen = ImageDraw.Draw(drawing)
        pen.ellipse((4, 4, 76, 76), fill=(11, 110, 79))
        pen.text((92, 18), "SWEEP", fill=(11, 110, 79), font_size=36)
        drawing.save(picture, "PNG")
        logo = decode_logo(picture.getvalue(), "logo.png")
        db.session.add(TenantLogo(tenant_id=t["id"], media_type=logo.media_type, content=logo.content,
                                  sha256=logo.sha256, width=logo.width, height=logo.height))
        tenant = db.session.get(Tenant, t["id"])
        tenant.settings = {**(tenant.settings or {}), "branding": {"accent": "#0b6e4f", "logo": logo.sha256[:16]}}
        db.session.flush()
        db.session.commit()
    admin = factory.user(user_type=UserType.SYSTEM_ADMIN, name="Sweep Console")
    return {"t": t, "users": {**users, "lonely": lonely, "sysadmin": admin}}


def pages_for(role: str, t: dict) -> list[tuple[str, str]]:
    """(name, path) of each page type this role opens."""
    base = f"/t/{t['slug']}"
    if role == "sysadmin":  # the system console (not a member of the tenant)
        return [("admin-tenants", "/admin/tenants"), ("admin-tenant", f"/admin/tenants/{t['slug']}"),
                ("admin-tenant-new", "/admin/tenants/new"), ("admin-users", "/admin/users"),
                ("admin-user", f"/admin/users/{t['owner_id']}"), ("admin-jobs", "/admin/jobs"),
                ("admin-security-events", "/admin/security-events"), ("account", "/account/profile")]
    device, site = t["devices"][0], t["sites"][0]
    pages = [("dashboard", f"{base}/"), ("sites", f"{base}/sites/"), ("site", f"{base}/sites/{site}"),
             ("devices", f"{base}/devices/"), ("devices-filtered", f"{base}/devices/?status=online&sort=status"),
             ("device", f"{base}/devices/{device}"), ("members", f"{base}/members/"),
             ("account", "/account/profile"), ("organizations", "/tenants"), ("mail", "/dev/mail"),
             ("not-found", f"{base}/devices/00000000-0000-0000-0000-000000000000")]
    if role == "lonely":  # a member without sites: the empty states explain why
        return [p for p in pages if p[0] in ("dashboard", "sites", "devices", "members")]
    if role == "owner":
        # First, while the sign-in is fresh enough for it: the page with the enrolment QR code.
        pages.insert(0, ("two-factor", "/account/two-factor"))
        pages += [("device-new", f"{base}/devices/new"), ("device-edit", f"{base}/devices/{device}/edit"),
                  ("device-import", f"{base}/devices/import"), ("site-new", f"{base}/sites/new"),
                  ("site-edit", f"{base}/sites/{site}/edit"), ("invitations", f"{base}/invitations/"),
                  ("roles", f"{base}/roles/"), ("role-new", f"{base}/roles/new"),
                  ("settings", f"{base}/settings/"), ("settings-branding", f"{base}/settings/branding"),
                  ("settings-security", f"{base}/settings/security"), ("settings-plan", f"{base}/settings/plan"),
                  ("settings-export", f"{base}/settings/export"), ("settings-danger", f"{base}/settings/danger"),
                  ("settings-provisioning", f"{base}/settings/provisioning"),
                  ("account-security", "/account/security"), ("account-sessions", "/account/sessions"),
                  ("account-activity", "/account/activity"), ("account-notifications", "/account/notifications"),
                  ("account-data", "/account/data"),
                  ("analytics", f"{base}/analytics/?type=device.status&range=90"),
                  ("tasks", f"{base}/tasks/"), ("tasks-board", f"{base}/tasks/board"),
                  ("task-new", f"{base}/tasks/new?site={site}"), ("api-clients", f"{base}/api-clients/"),
                  ("my-tasks", "/tasks"), ("notifications", "/notifications/")]
    return pages


def load(tab: Tab, path: str) -> None:
    tab.console_errors.clear()
    tab.page_errors.clear()
    tab.page.goto(path)
    tab.page.wait_for_function(SETTLED, polling=50)


def check_page(tab: Tab, name: str, path: str, width_name: str, role: str, axe) -> list[str]:
    """The page as loaded (load() first), at the viewport's current size and colour scheme."""
    page = tab.page
    problems = []
    errors = [m for m in tab.console_errors + tab.page_errors
              # 404 pages are meant to answer 404: Chromium logs the status of the document itself.
              if not (name == "not-found" and "404" in m)]
    problems += [f"console: {m}" for m in errors]
    problems += [f"CSP: {m}" for m in tab.csp_problems()]
    # Every image has arrived (htmx may have swapped some in late) and decoded: a broken one,
    # like an SVG data URI without its namespace, loads "complete" with naturalWidth 0.
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)", polling=50)
    broken = page.evaluate("""() => Array.from(document.images).filter(i => !(i.naturalWidth > 0))
        .map(i => `${i.alt || '(no alt)'} ${i.getAttribute('src').slice(0, 60)}`)""")
    problems += [f"image did not decode: {b}" for b in broken]
    # An id names one element: a second one breaks labels, aria references and scripts (axe rates
    # duplicate-id "minor", so it does not catch it).
    duplicated = page.evaluate("""() => { const seen = {}; document.querySelectorAll('[id]').forEach(e => {
        seen[e.id] = (seen[e.id] || 0) + 1; }); return Object.keys(seen).filter(k => seen[k] > 1); }""")
    problems += [f"id used more than once: {d}" for d in duplicated]
    # Text cut off by its box (overflow hidden or clip, an ellipsis) must say in full what it is: a
    # title on it or an ancestor. Scrolling boxes, form fields and visually hidden text are not cut.
    clipped = page.evaluate("""() => Array.from(document.querySelectorAll('body *')).filter(e => {
        if (['INPUT', 'TEXTAREA', 'SELECT', 'OPTION', 'svg'].includes(e.tagName) || e.closest('svg')) return false;
        const r = e.getBoundingClientRect();
        if (r.width <= 2 || r.height <= 2 || !e.textContent.trim()) return false;
        const s = getComputedStyle(e);
        if (!['hidden', 'clip'].includes(s.overflowX) || s.visibility === 'hidden') return false;
        return e.scrollWidth > e.clientWidth + 1 && !e.closest('[title]');
    }).slice(0, 5).map(e => `${e.tagName.toLowerCase()}.${e.className} "${e.textContent.trim().slice(0, 40)}"`)""")
    problems += [f"text clipped without a title: {c}" for c in clipped]
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if scroll > inner:
        culprits = page.evaluate("""(inner) => Array.from(document.querySelectorAll('body *'))
            .filter(e => e.getBoundingClientRect().right > inner + 1)
            .filter(e => !(e.parentElement && e.parentElement.getBoundingClientRect().right > inner + 1))
            .slice(0, 5).map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className + ' ' +
                              Math.round(e.getBoundingClientRect().right))""", inner)
        problems.append(f"document is {scroll}px wide in a {inner}px viewport: {culprits}")
    if page.evaluate("typeof window.axe") == "undefined":  # once per load, not once per check
        page.evaluate(axe.axe_script)
    results = page.evaluate('axe.run(document, {"resultTypes": ["violations"]})')
    for v in results["violations"]:
        if v["impact"] in ("serious", "critical"):
            targets = [n["target"] for n in v["nodes"][:3]]
            problems.append(f"axe {v['impact']} {v['id']}: {v['help']} at {targets}")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{role}-{name}-{width_name}.png"), full_page=True)
    return [f"{role} {name} @{width_name} ({path}): {p}" for p in problems]


def sweep_role(tab: Tab, role: str, pages, axe) -> list[str]:
    """Each page loaded once and checked at both widths (and in the dark for the DARK ones)."""
    problems = []
    for name, path in pages:
        tab.page.set_viewport_size({"width": WIDTHS["wide"][0], "height": WIDTHS["wide"][1]})
        load(tab, path)
        problems += check_page(tab, name, path, "wide", role, axe)
        tab.page.set_viewport_size({"width": WIDTHS["phone"][0], "height": WIDTHS["phone"][1]})
        problems += check_page(tab, name, path, "phone", role, axe)
        if name in DARK:
            tab.page.emulate_media(color_scheme="dark")
            problems += check_page(tab, name, path, "phone-dark", role, axe)
            tab.page.emulate_media(color_scheme="light")
    return problems


@pytest.fixture(scope="module")
def axe():
    from axe_playwright_python.sync_playwright import Axe
    return Axe()


# The long sweeps are `make test-extended` (run by .ci/run); `make test` keeps the shortest one,
# so the sweep's own checks run on every `make test`.
@pytest.mark.parametrize("role", [pytest.param(r, marks=pytest.mark.extended) for r in ("owner", "member", "viewer")]
                         + ["lonely", pytest.param("sysadmin", marks=pytest.mark.extended)])
def test_every_page_at_both_widths(chromium, live_server, sweep, axe, role):
    context = chromium.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_CSP_VIOLATIONS + RECORD_HTMX)
    try:
        tab = Tab(context.new_page())
        sign_in(tab.page, sweep["users"][role].email, PASSWORD)
        problems = sweep_role(tab, role, pages_for(role, {**sweep["t"], "owner_id": sweep["users"]["owner"].id}), axe)
        assert not problems, "\n".join(problems)
    finally:
        context.close()


def test_signed_out_pages(chromium, live_server, axe):
    context = chromium.new_context(base_url=live_server)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_CSP_VIOLATIONS + RECORD_HTMX)
    try:
        tab = Tab(context.new_page())
        problems = sweep_role(tab, "anonymous", [("login", "/login"), ("forgot", "/password/forgot")], axe)
        assert not problems, "\n".join(problems)
    finally:
        context.close()
