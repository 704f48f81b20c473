"""Issue 22's defects that broke trust, each with the test that would have caught it: what a
person sees on the page, in the bell or in an email, against the real app and the sample data."""
from __future__ import annotations

import html as htmllib
import re

import pytest
import sqlalchemy as sa
from conftest import SEED_PASSWORD, csrf_token, login

from portal.database.context import tenant_scope
from portal.extensions import db
from test_tasks import client_of, new_task, people, shop  # noqa: F401 (fixtures)


def text_of(page: str) -> str:
    """The page's visible text, roughly: tags out, entities decoded, spaces collapsed."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", page))).strip()


def form_data(page: str, action: str) -> dict:
    """What a browser submits for the form posting to `action`, as the page renders it: hidden
    fields and the checkboxes that are ticked."""
    form = re.search(r'<form[^>]*action="' + re.escape(action) + r'"[^>]*>(.*?)</form>', page, re.S)
    assert form, f"no form posting to {action}"
    data = {}
    for tag in re.findall(r"<input\b[^>]*>", form.group(1)):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if not name or (kind and kind.group(1) == "checkbox" and " checked" not in tag):
            continue
        data[name.group(1)] = htmllib.unescape(value.group(1)) if value else "y"
    return data


# 1. The dashboard printed tenant.type ("standard") as TechStart's plan (Pro).
def test_dashboard_shows_the_plan_by_its_name(client):
    login(client, "charlie@techstart.io", SEED_PASSWORD)
    seen = text_of(client.get("/t/techstart/").get_data(as_text=True))
    assert "Plan: Pro" in seen and "standard" not in seen


# 2. Rotating a gateway's secret from the device page dropped the gateway flag.
def test_rotating_a_gateway_secret_keeps_it_a_gateway(app, client, factory):
    owner = factory.user()
    t = factory.tenant(members={"owner": owner}, sites=1, devices=3)
    slug, gateway_device = t["slug"], t["devices"][0]
    login(client, owner.email)
    action = f"/t/{slug}/devices/{gateway_device}/agent/credential"
    client.post(action, data={"csrf_token": csrf_token(client), "gateway": "y"})
    page = client.get(f"/t/{slug}/devices/{gateway_device}").get_data(as_text=True)
    assert "(gateway)" in text_of(page)
    # Rotate as a person would: submit the form as the page shows it.
    rotated = client.post(action, data=form_data(page, action), follow_redirects=True).get_data(as_text=True)
    secret = re.search(r'id="agent-secret"[^>]*value="([^"]+)"', rotated).group(1)
    batch = [{"device_id": str(d), "status": "online"} for d in t["devices"]]
    answer = app.test_client().post("/api/v1/agent/heartbeat", json={"devices": batch},
                                    headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200, answer.json
    # Unticking the box is the explicit way to make it a plain device agent again.
    page = client.get(f"/t/{slug}/devices/{gateway_device}").get_data(as_text=True)
    plain = {k: v for k, v in form_data(page, action).items() if k != "gateway"}
    client.post(action, data=plain)
    assert "(gateway)" not in text_of(client.get(f"/t/{slug}/devices/{gateway_device}").get_data(as_text=True))


def test_the_credential_service_keeps_the_gateway_flag_by_default(app, factory):
    from portal.agents import credentials
    from portal.agents.models import AgentCredential
    from portal.devices.models import Device
    from portal.tenancy import TenantContext
    from portal.tenancy import Permission
    from portal.tenancy.roles import Role
    from portal.tenants.models import Tenant
    t = factory.tenant(sites=1, devices=1)
    with app.test_request_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        ctx = TenantContext(db.session.get(Tenant, t["id"]), None, Role("test", "Test", "", frozenset(Permission)))
        device = db.session.get(Device, (t["id"], t["devices"][0]))
        credentials.issue(ctx, device, gateway=True)
        credentials.issue(ctx, device)
        live = db.session.scalar(sa.select(AgentCredential).where(AgentCredential.revoked_at.is_(None)))
        assert live.gateway is True
        db.session.rollback()


# 3. Audit search did not find task titles; role rows read "Alice Johnson: role.create on role c721…".
def test_audit_search_finds_task_titles(client):
    login(client, "alice@acme.com", SEED_PASSWORD)
    seen = text_of(client.get("/t/acme-corp/audit/?q=energy+meter+for+the").get_data(as_text=True))
    assert "created task ‘Read the energy meter for the audit’" in seen
    assert "No entries match" not in seen


def test_role_changes_read_as_sentences(app, factory):
    owner = factory.user(name="Olive Owner")
    t = factory.tenant(members={"owner": owner})
    client = app.test_client()
    login(client, owner.email)
    slug = t["slug"]

    def post(url, **data):
        return client.post(url, data={"csrf_token": csrf_token(client), **data})
    assert post(f"/t/{slug}/roles/new", name="Auditor", description="Reads the log",
                permissions=["audit:view", "devices:view"]).status_code == 303
    role_id = re.search(r'/roles/([0-9a-f-]{36})/edit', client.get(f"/t/{slug}/roles/").get_data(as_text=True))[1]
    assert post(f"/t/{slug}/roles/{role_id}/edit", name="Log reader", description="Reads the log",
                permissions=["audit:view", "sites:view"]).status_code == 303
    assert post(f"/t/{slug}/roles/{role_id}/delete", fallback="viewer").status_code == 303
    seen = text_of(client.get(f"/t/{slug}/audit/").get_data(as_text=True))
    assert "Olive Owner created role ‘Auditor’ with 3 permissions" in seen
    assert ("Olive Owner edited role ‘Log reader’ (renamed it from ‘Auditor’; granted: see sites; "
            "withdrew: see devices and export them)") in seen
    assert "Olive Owner deleted role ‘Log reader’" in seen
    assert "role.create on" not in seen and role_id not in re.sub(r"<details.*?</details>", "",
                                                                 client.get(f"/t/{slug}/audit/").get_data(as_text=True),
                                                                 flags=re.S)


def test_no_sample_audit_row_is_shown_raw(app):
    """Every kind of row the sample data writes, in every tenant, is a sentence."""
    from portal.auditlog import queries
    from portal.auditlog.describe import Names, sentence
    from portal.tenants.models import Tenant
    with app.app_context():
        tenants = db.session.execute(sa.select(Tenant.id, Tenant.slug)).all()
        for tenant_id, slug in tenants:
            with tenant_scope(db.session, tenant_id, actor="test:setup"):
                rows = db.session.execute(queries.statement(tenant_id, queries.AuditFilter())).all()
                names = Names.for_rows(tenant_id, rows)
                for row in rows:
                    said = sentence(row, names)
                    assert row.action not in said and (row.resource_id or "-") not in said, (slug, said)
                db.session.rollback()


@pytest.mark.parametrize("action, before, after, said", [
    ("api_client.create", None, {"name": "Billing sync"}, "Ann created API client ‘Billing sync’"),
    ("api_client.rotate", None, {"name": "Billing sync"}, "Ann rotated the secret of API client ‘Billing sync’"),
    ("api_client.disable", {"name": "B"}, {"name": "B"}, "Ann disabled API client ‘B’"),
    ("api_client.delete", {"name": "B"}, None, "Ann deleted API client ‘B’"),
    ("tenant.update", {"name": "A", "slug": "a"}, {"name": "B", "slug": "a"}, "Ann edited the organization's profile (name)"),
    ("tenant.security_policy", {"require_mfa": False}, {"require_mfa": True, "mfa_required_since": "x"},
     "Ann changed the security policy (two-factor requirement)"),
    ("tenant.plan", {"plan": "free"}, {"plan": "pro"}, "Ann changed the plan from free to pro (system console)"),
    ("tenant.export", None, None, "Ann asked for an export of all the organization's data"),
    ("tenant.onboarding_dismiss", None, None, "Ann dismissed the getting-started checklist"),
    ("invitation.expired", {"status": "pending"}, {"status": "expired", "email": "x@example.com"},
     "Ann ended the invitation to x@example.com as expired"),
    ("user.disable", None, {"email": "x@example.com"}, "Ann disabled the account of x@example.com (system console)"),
    ("member.provision", None, {"email": "x@example.com", "role": "viewer", "status": "active"},
     "Ann provisioned x@example.com as viewer"),
    ("member.provision", None, {"email": "x@example.com", "role": "admin", "status": "active", "linked": True},
     "Ann took over x@example.com, already a member, for provisioning"),
    ("member.scim_update", {"user_name": "a", "emails": []}, {"user_name": "b", "emails": []},
     "Ann updated how the identity provider describes someone (user name)"),
    ("scim_token.create", None, {"name": "Okta"}, "Ann created SCIM token ‘Okta’"),
    ("scim_token.rotate", None, {"name": "Okta"}, "Ann rotated SCIM token ‘Okta’"),
    ("scim_token.revoke", {"name": "Okta"}, {"name": "Okta"}, "Ann revoked SCIM token ‘Okta’"),
    ("scim_group.create", None, {"name": "Techs", "members": ["a"]}, "Ann created group ‘Techs’ with 1 member"),
    ("scim_group.update", {"name": "Techs"}, {"name": "Field", "added": ["a"], "removed": []},
     "Ann changed group ‘Field’ (renamed it from ‘Techs’; added a)"),
    ("scim_group.delete", {"name": "Techs", "members": 2}, None, "Ann deleted group ‘Techs’"),
    ("something.new", None, {"name": "Thing"}, "Ann: something new (widget ‘Thing’)"),
])
def test_every_kind_of_row_reads_as_words(action, before, after, said):
    from types import SimpleNamespace

    from portal.auditlog.describe import Names, sentence
    row = SimpleNamespace(user_id="u", actor_name="Ann", actor_email=None, action=action, before=before, after=after,
                          details={}, resource_type="widget" if action == "something.new" else action.split(".")[0],
                          resource_id="c721a9e0-0000-0000-0000-000000000000")
    assert sentence(row, Names({}, {}, set())) == said


# 4. The bell filled with "new sign-in" notices and buried the task notices.
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def test_new_browser_sign_ins_go_to_email_and_the_security_log_not_the_bell(app, db_urls, factory):
    import psycopg

    from portal.database.provision import libpq_url
    ann = factory.user(name="Ann Example")
    login(app.test_client(), ann.email)  # the first sign-in: nothing to tell
    for _ in range(5):  # five new browsers
        browser = app.test_client()
        browser.environ_base["HTTP_USER_AGENT"] = CHROME
        login(browser, ann.email)
    bell = browser.get("/notifications/count", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "unread" not in bell and not re.search(r">\s*\d+\s*<", bell), bell  # no unread count
    page = text_of(browser.get("/notifications/").get_data(as_text=True))
    assert "New sign-in" not in page
    account = " ".join(text_of(browser.get(f"/account/{section}").get_data(as_text=True))
                       for section in ("activity", "notifications"))
    assert account.count("Signed in from a new browser") == 5
    assert "Sign-in from a new browser: by email only, always (security)" in account
    with psycopg.connect(libpq_url(db_urls["owner"])) as conn:
        emails = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'notifications.email' "
                              "AND args->>'kind' = 'signin_new_browser' AND args->'recipients'->0->>1 = %s",
                              (ann.email,)).fetchone()[0]
    assert emails == 5


# 5. Comment emails said "X commented on ..." without the comment.
def test_a_comment_email_carries_the_comment_escaped_and_trimmed(app, db_urls, shop):  # noqa: F811
    import json as jsonlib
    from uuid import UUID

    import psycopg

    from portal.database.provision import libpq_url
    from portal.mail.outbox import body
    from portal.notifications.emails import send_one
    from portal.notifications.kinds import Kind
    from test_notifications import prefer
    member = shop["u"]["member"]
    prefer(app, member.id, Kind.TASK_COMMENTED, "both")
    task_id = new_task(shop, title="Replace the lobby camera", assignee_id=member.id,
                       site_id=shop["t"]["sites"][0])
    owner = client_of(shop, "owner")
    comment = "Use the <b>spare</b> unit & check the mount.\nSecond line. " + "word " * 400
    r = owner.post(f"/t/{shop['slug']}/tasks/{task_id}/comments",
                   data={"csrf_token": csrf_token(owner), "body": comment})
    assert r.status_code == 303
    with psycopg.connect(libpq_url(db_urls["owner"])) as conn:
        args = conn.execute("SELECT args FROM procrastinate_jobs WHERE task_name = 'notifications.email' "
                            "AND args->>'kind' = 'task_commented' AND args->>'link' LIKE %s",
                            (f"%{task_id}",)).fetchone()[0]
    args = args if isinstance(args, dict) else jsonlib.loads(args)
    [(user_id, address)] = args["recipients"]
    assert address == member.email
    with app.test_request_context():
        message = send_one(UUID(user_id), address, Kind(args["kind"]), args["params"], args["link"], "https://p.example")
        mail = body(message)
        db.session.rollback()
    assert "Use the &lt;b&gt;spare&lt;/b&gt; unit &amp; check the mount." in mail["html"]  # escaped
    assert "<b>spare</b>" not in mail["html"]
    assert "> Use the <b>spare</b> unit & check the mount.\n> Second line." in mail["text"]
    quoted = re.search(r"<blockquote[^>]*>(.*?)</blockquote>", mail["html"], re.S)[1]
    assert quoted.endswith("…") and len(htmllib.unescape(quoted)) <= 1000  # trimmed, at a word
    assert quoted[:-1].endswith("word")


# 6. A task whose assignee lost its site linked them to 404 pages (the site, the device).
def links_of(page: str, prefix: str) -> set[str]:
    main = page[page.find("<main"):] if "<main" in page else page
    return {htmllib.unescape(h) for h in re.findall(r'href="(' + re.escape(prefix) + r'[^"#]*)', main)}


def test_a_task_whose_assignee_lost_the_site_links_to_no_404(app, shop):  # noqa: F811
    from portal.sites import services as site_services
    from portal.sites.models import Site
    from test_tasks import As
    slug, member = shop["slug"], shop["u"]["member"]
    site, device = shop["t"]["sites"][0], shop["t"]["devices"][0]
    task_id = new_task(shop, title="Fix the lobby camera", assignee_id=member.id, site_id=site, device_id=device)
    with As(shop, "owner") as ctx:
        site_services.unassign_user_from_site(ctx, db.session.get(Site, (ctx.tenant_id, site)), member.id)
    client = client_of(shop, "member")
    page = client.get(f"/t/{slug}/tasks/{task_id}").get_data(as_text=True)
    seen = text_of(page)
    assert "You are no longer assigned to the site of this task" in seen
    assert "(not one of your sites)" in seen and "(at a site you are not assigned to)" in seen
    # Every link of the task page, of My tasks and of the bell opens (none is a 404).
    links = links_of(page, f"/t/{slug}/") | links_of(client.get("/tasks").get_data(as_text=True), f"/t/{slug}/")
    links |= links_of(client.get("/notifications/").get_data(as_text=True), "/notifications/")
    assert f"/t/{slug}/tasks/{task_id}" in links
    for link in sorted(links):
        response = client.get(link, follow_redirects=True)
        assert response.status_code != 404, link
    # A link that leads nowhere for them (the site's page) says why, in words, without telling
    # whether it exists.
    gone = client.get(f"/t/{slug}/sites/{site}")
    assert gone.status_code == 404 and "You see only the sites you are assigned to" in text_of(gone.get_data(as_text=True))
    nothing = client.get(f"/t/{slug}/sites/00000000-0000-0000-0000-000000000000")
    assert text_of(nothing.get_data(as_text=True)) == text_of(gone.get_data(as_text=True))


# 7. The console's "Users" column showed the limit; "Reactivate" was offered on an active tenant, unconfirmed.
def test_console_counts_users_and_offers_only_valid_confirmed_status_changes(app):
    client = app.test_client()
    login(client, "admin@system.local", SEED_PASSWORD)
    listing = client.get("/admin/tenants?q=acme").get_data(as_text=True)
    row = re.search(r"<tr><td><a[^>]*>Acme Corporation</a>.*?</tr>", listing, re.S)[0]
    assert "5 / 100 allowed" in text_of(row)  # Acme: 5 members, 100 allowed
    active = client.get("/admin/tenants/acme-corp").get_data(as_text=True)
    triggers = re.findall(r'data-dialog="status-(\w+)"', active)
    assert triggers == ["suspend", "archive"]
    for action in triggers:  # each behind a dialog naming the tenant and the consequence
        dialog = re.search(rf'<dialog id="status-{action}".*?</dialog>', active, re.S)[0]
        seen = text_of(dialog)
        assert f"{action.title()} Acme Corporation?" in seen and "Keep it active" in seen
        assert f'name="action" value="{action}"' in dialog
    suspended = client.get("/admin/tenants/gamma-logistics").get_data(as_text=True)
    assert re.findall(r'data-dialog="status-(\w+)"', suspended) == ["reactivate", "archive"]
    assert "Keep it suspended" in text_of(suspended)


# 8. Analytics had two elements with id="type" (the chart's filter and the event form).
def test_ids_are_unique_on_the_analytics_page(client):
    login(client, "alice@acme.com", SEED_PASSWORD)
    page = client.get("/t/acme-corp/analytics/").get_data(as_text=True)
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert "event-type" in ids and "type" in ids
    assert sorted({i for i in ids if ids.count(i) > 1}) == []
    # The labels still name their fields.
    assert 'for="event-type"' in page and 'for="type"' in page


# 10. Copy: "‘Walk Meter 1’’s agent", "22 notification(s)", "is now maintenance", "bad reauth",
#     "password+backup_code".
def test_an_agent_is_named_without_a_quoted_possessive(app, client, factory):
    from portal.devices.models import Device
    owner = factory.user(name="Olive Owner")
    t = factory.tenant(members={"owner": owner}, sites=1, devices=1)
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        db.session.get(Device, (t["id"], t["devices"][0])).name = "Walk Meter 1"
        db.session.commit()
    login(client, owner.email)
    base = f"/t/{t['slug']}/devices/{t['devices'][0]}"
    page = client.post(f"{base}/agent/credential", data={"csrf_token": csrf_token(client)},
                       follow_redirects=True).get_data(as_text=True)
    secret = re.search(r'id="agent-secret"[^>]*value="([^"]+)"', page).group(1)
    agent = app.test_client()
    assert agent.post("/api/v1/agent/heartbeat", json={"status": "maintenance"},
                      headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    client.post(f"{base}/agent/tasks", data={"csrf_token": csrf_token(client), "command": "reboot",
                                             "expires": "1h"})
    history = text_of(client.get(base).get_data(as_text=True))
    assert "The agent of Walk Meter 1 changed status from online to maintenance" in history
    audit = text_of(client.get(f"/t/{t['slug']}/audit/").get_data(as_text=True))
    assert "The agent of Walk Meter 1 changed the status of ‘Walk Meter 1’" in audit
    assert "Olive Owner sent reboot to the agent of ‘Walk Meter 1’" in audit
    assert "’’" not in audit and "’s agent" not in audit


def test_counts_and_statuses_read_as_english(app, client, factory):
    from portal.notifications import Kind
    from portal.words import plural, possessive
    assert [plural(n, "notification") for n in (1, 22, 1200)] == [
        "1 notification", "22 notifications", "1,200 notifications"]
    assert (possessive("Acme Corporation"), possessive("Beta Solutions")) == ("Acme Corporation’s", "Beta Solutions’")
    owner = factory.user()
    t = factory.tenant(members={"owner": owner}, sites=1, devices=1)
    with app.test_request_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        from portal.notifications import notify
        notify(t["id"], [owner.id], Kind.SITE_ASSIGNED, {"actor": "Ann", "site": "HQ", "tenant": "T"}, None)
        notify(t["id"], [owner.id], Kind.SITE_ASSIGNED, {"actor": "Ann", "site": "Lab", "tenant": "T"}, None)
        db.session.commit()
    login(client, owner.email)
    r = client.post("/notifications/read-all", data={"csrf_token": csrf_token(client)}, follow_redirects=True)
    assert "2 notifications marked as read." in text_of(r.get_data(as_text=True))
    device = t["devices"][0]
    r = client.post(f"/t/{t['slug']}/devices/{device}/status", data={"csrf_token": csrf_token(client),
                                                                       "status": "maintenance"}, follow_redirects=True)
    assert "is now in maintenance." in text_of(r.get_data(as_text=True))


def test_the_security_log_names_reasons_and_methods_in_words(app, factory):
    from portal.database.context import user_scope
    from portal.security import events
    ann = factory.user()
    with app.test_request_context(), user_scope(db.session, ann.id):
        events.record(ann.email, success=False, reason="bad_reauth", user_id=ann.id, method="reauth")
        events.record(ann.email, success=True, reason="ok", user_id=ann.id, method="password+backup_code")
        db.session.commit()
    client = app.test_client()
    login(client, ann.email)
    seen = " ".join(text_of(client.get(f"/account/{section}").get_data(as_text=True))
                    for section in ("sessions", "activity"))
    assert "failed: wrong password when confirming a sensitive change" in seen
    assert "password and backup code" in seen
    assert "bad reauth" not in seen and "backup_code" not in seen and "password+" not in seen


# 11. A suspended tenant's owner was told to contact the owner.
def test_a_suspended_tenant_tells_its_owner_and_its_members_whom_to_ask(app):
    owner, member = app.test_client(), app.test_client()
    login(owner, "erin@betasolutions.io", SEED_PASSWORD)  # owner of the suspended Gamma Logistics
    login(member, "consultant@external.com", SEED_PASSWORD)  # a viewer there
    said = {}
    for who, client in (("owner", owner), ("member", member)):
        page = client.get("/t/gamma-logistics/")
        assert page.status_code == 423
        said[who] = text_of(page.get_data(as_text=True))
        assert "The invoice of October is overdue" in said[who]
    assert "As its owner, contact the service's support" in said["owner"]
    assert "Contact your organization's owner" not in said["owner"] and "Contact an owner" not in said["owner"]
    assert "Contact an owner of Gamma Logistics: only an owner can have it reactivated" in said["member"]
    assert "support" not in said["member"]


# 12. "New device" in a tenant without sites offered an empty site menu and no way forward.
def test_new_device_without_sites_says_to_create_a_site_first(app, factory):
    from test_roles import add_member, make_role
    owner, fitter = factory.user(), factory.user()
    t = factory.tenant(members={"owner": owner}, sites=0)
    add_member(app, t["id"], fitter, custom=make_role(app, t["id"], "Fitter", ["tenant:view", "devices:view",
                                                                              "devices:write", "sites:view"]))
    client = app.test_client()
    login(client, owner.email)
    page = client.get(f"/t/{t['slug']}/devices/new")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Create a site first" in text_of(html)
    assert f'href="/t/{t["slug"]}/sites/new"' in html and "<select" not in html.split("<main", 1)[-1]
    other = app.test_client()
    login(other, fitter.email)
    seen = text_of(other.get(f"/t/{t['slug']}/devices/new").get_data(as_text=True))
    assert "Create a site first" in seen and "Ask an owner or admin" in seen
    assert "/sites/new" not in other.get(f"/t/{t['slug']}/devices/new").get_data(as_text=True)
