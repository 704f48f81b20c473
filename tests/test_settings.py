"""An organization's own settings: name and contact, usage against the plan, and the security
policy (IP allow list, two-factor with a grace period), as members and outsiders meet them."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from conftest import csrf_token, login, make_app
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.tenants.models import Tenant


def post(client, url, **data):
    return client.post(url, data={"csrf_token": csrf_token(client), **data})


@pytest.fixture
def org(app, factory):
    users = {r: factory.user(name=f"{r.title()} Settings") for r in ("owner", "admin", "member")}
    t = factory.tenant(members=users, sites=1, devices=3, max_devices=10)
    clients = {}
    for r, u in users.items():
        clients[r] = app.test_client()
        login(clients[r], u.email)
    return {"t": t, "slug": t["slug"], "users": users, "c": clients}


def settings_of(app, tenant_id) -> Tenant:
    with app.app_context():
        t = db.session.get(Tenant, tenant_id)
        db.session.expunge(t)
        return t


def test_owner_sees_usage_and_renames_the_organization(app, org):
    owner, slug = org["c"]["owner"], org["slug"]
    page = owner.get(f"/t/{slug}/settings/plan").get_data(as_text=True)
    assert "3 of 10" in page  # devices in service against the limit
    assert re.search(r"<title>Plan and usage · Settings · [^<]*</title>", page)
    assert 'href="/t/%s/settings/"' % slug in owner.get(f"/t/{slug}/").get_data(as_text=True)
    assert 'href="/t/%s/settings/"' % slug not in org["c"]["admin"].get(f"/t/{slug}/").get_data(as_text=True)
    r = post(owner, f"/t/{slug}/settings/general", name="  ", contact_email="")
    assert r.status_code == 422
    r = post(owner, f"/t/{slug}/settings/general", name="Renamed Org", contact_email="ops@example.com")
    assert r.status_code == 303
    t = settings_of(app, org["t"]["id"])
    assert (t.name, t.contact_email) == ("Renamed Org", "ops@example.com")


def test_ip_allow_list_refuses_other_networks_and_never_locks_out_its_author(app, org):
    owner, member, slug = org["c"]["owner"], org["c"]["member"], org["slug"]
    r = post(owner, f"/t/{slug}/settings/security", ip_allowlist="10.0.0.0/33")
    assert r.status_code == 422 and "is not a network" in r.get_data(as_text=True)
    r = post(owner, f"/t/{slug}/settings/security", ip_allowlist="203.0.113.0/24")
    assert r.status_code == 422 and "would lock you out" in r.get_data(as_text=True)
    r = post(owner, f"/t/{slug}/settings/security", ip_allowlist="127.0.0.0/8\n2001:db8::/48")
    assert r.status_code == 303
    assert settings_of(app, org["t"]["id"]).settings["security"]["ip_allowlist"] == ["127.0.0.0/8", "2001:db8::/48"]
    assert member.get(f"/t/{slug}/").status_code == 200
    away = app.test_client()
    away.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    login(away, org["users"]["member"].email)
    r = away.get(f"/t/{slug}/devices/")
    assert r.status_code == 403 and "198.51.100.7" in r.get_data(as_text=True)
    assert "SN-" not in r.get_data(as_text=True)


def test_forwarded_addresses_count_only_behind_trusted_proxies(db_urls, app, org):
    post(org["c"]["owner"], f"/t/{org['slug']}/settings/security", ip_allowlist="127.0.0.0/8")
    for proxies, expected in ((0, 200), (1, 403)):
        proxied = make_app(db_urls, TRUSTED_PROXIES=proxies)
        client = proxied.test_client()
        login(client, org["users"]["member"].email)
        r = client.get(f"/t/{org['slug']}/", headers={"X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == expected, proxies


def test_required_two_factor_waits_for_the_grace_period(app, org):
    owner, member, slug = org["c"]["owner"], org["c"]["member"], org["slug"]
    assert post(owner, f"/t/{slug}/settings/security", require_mfa="y", mfa_grace_days="7").status_code == 303
    page = member.get(f"/t/{slug}/")
    assert page.status_code == 200 and "requires two-factor authentication from" in page.get_data(as_text=True)
    assert post(owner, f"/t/{slug}/settings/security", require_mfa="y", mfa_grace_days="0").status_code == 303
    r = member.get(f"/t/{slug}/")
    assert r.status_code == 303 and "/account/two-factor" in r.headers["Location"]
    with app.app_context(), tenant_scope(db.session, org["t"]["id"], actor="test:setup"):
        actions = db.session.scalars(sa.text("SELECT action FROM audit_logs WHERE resource_type = 'tenant'")).all()
    assert actions == ["tenant.security_policy", "tenant.security_policy"]


def test_a_new_address_leads_members_from_the_old_one_and_keeps_it_reserved(app, factory, org):
    owner, member, slug = org["c"]["owner"], org["c"]["member"], org["slug"]
    new = f"{slug}-renamed"
    r = post(owner, f"/t/{slug}/settings/general", name="Renamed", slug="Not Valid!")
    assert r.status_code == 422 and "lowercase letters" in r.get_data(as_text=True)
    r = post(owner, f"/t/{slug}/settings/general", name="Renamed", slug="acme-corp")
    assert r.status_code == 422 and "is taken" in r.get_data(as_text=True)
    r = post(owner, f"/t/{slug}/settings/general", name="Renamed", slug=new)
    assert r.status_code == 303 and r.headers["Location"].startswith(f"/t/{new}/")
    old = member.get(f"/t/{slug}/devices/?status=online")
    assert old.status_code == 308 and old.headers["Location"] == f"/t/{new}/devices/?status=online"
    assert member.get(old.headers["Location"]).status_code == 200
    stranger = app.test_client()
    login(stranger, factory.user().email)
    assert stranger.get(f"/t/{slug}/").status_code == 404  # nothing tells a stranger where it went
    other = factory.tenant(members={"owner": org["users"]["owner"]}, sites=0)
    r = post(owner, f"/t/{other['slug']}/settings/general", name="Other", slug=slug)
    assert r.status_code == 422 and "is taken" in r.get_data(as_text=True)  # reserved for 30 days
    r = post(owner, f"/t/{new}/settings/general", name="Renamed", slug=slug)  # its own old address back
    assert r.status_code == 303 and owner.get(f"/t/{slug}/").status_code == 200


def test_members_sign_ins_reach_the_audit_log_only_when_the_policy_shares_them(app, factory, org):
    owner, admin, member, slug = org["c"]["owner"], org["c"]["admin"], org["c"]["member"], org["slug"]
    outsider = factory.user()
    login(app.test_client(), outsider.email)  # a sign-in of someone who is not a member
    page = admin.get(f"/t/{slug}/audit/sign-ins").get_data(as_text=True)
    assert "does not share" in page and org["users"]["member"].email not in page
    assert post(owner, f"/t/{slug}/settings/security", share_member_signins="y").status_code == 303
    page = admin.get(f"/t/{slug}/audit/sign-ins").get_data(as_text=True)
    assert org["users"]["member"].email in page and "signed in" in page
    assert outsider.email not in page  # only the tenant's members
    assert member.get(f"/t/{slug}/audit/sign-ins").status_code == 403  # no audit:view
    # The database answers nothing outside a tenant context, whatever the caller.
    with app.app_context():
        assert db.session.execute(sa.text("SELECT * FROM portal_member_signins(10)")).all() == []
