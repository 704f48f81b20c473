"""The JSON API and its OAuth 2.0 clients: token lifecycle, isolation, scopes, conventions."""
from __future__ import annotations

import base64
import re
import time

import uuid

import pytest
import sqlalchemy as sa
from conftest import csrf_token, login, make_app

from portal.api import credentials, services
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.tenancy import Permission, TenantContext
from portal.tenancy.roles import Role
from portal.tenants.models import Tenant

ALL = Role("test", "Test", "", frozenset(Permission))


def make_client(app, tenant_id, scopes, site_ids=None, name="test client"):
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        tenant = db.session.get(Tenant, tenant_id)
        client, secret = services.create_client(TenantContext(tenant, None, ALL),
                                                services.ClientData(name, list(scopes), site_ids))
        client_id = str(client.id)
        db.session.commit()
    return client_id, secret


def basic(client_id, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def get_token(http, client_id, secret, scope=None, form=False):
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    if form:
        response = http.post("/oauth/token", data={**data, "client_id": client_id, "client_secret": secret})
    else:
        response = http.post("/oauth/token", data=data, headers=basic(client_id, secret))
    return response


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def token_for(app, http, tenant_id, scopes, site_ids=None):
    client_id, secret = make_client(app, tenant_id, scopes, site_ids)
    response = get_token(http, client_id, secret)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["access_token"]


EVERYTHING = [p.value for p in Permission]


@pytest.fixture
def api(app, world, client):
    return {"app": app, "http": client, "a": world["a"], "b": world["b"], "world": world,
            "token": token_for(app, client, world["a"]["id"], EVERYTHING)}


def test_token_issue_by_basic_and_form_and_use(app, client, world):
    client_id, secret = make_client(app, world["a"]["id"], ["devices:view", "sites:view"])
    for form in (False, True):
        response = get_token(client, client_id, secret, form=form)
        assert response.status_code == 200
        body = response.get_json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
        assert set(body["scope"].split()) == {"devices:view", "sites:view"}
        assert body["access_token"].startswith("pat_")
        assert response.headers["Cache-Control"] == "no-store"
        listed = client.get("/api/v1/devices", headers=bearer(body["access_token"]))
        assert listed.status_code == 200 and len(listed.get_json()["items"]) == 2
    # Asked for less: gets less (a scope the client lacks is invalid_scope: test_api_edges).
    narrow = get_token(client, client_id, secret, scope="devices:view").get_json()
    assert narrow["scope"] == "devices:view"
    assert client.get("/api/v1/sites", headers=bearer(narrow["access_token"])).status_code == 403
    assert get_token(client, client_id, "pcs_wrong").status_code == 401
    assert get_token(client, "not-a-uuid", secret).status_code == 401
    # Stored hashed only.
    with app.app_context(), tenant_scope(db.session, world["a"]["id"], actor="test:setup"):
        from portal.api.models import ApiClient, ApiToken
        row = db.session.get(ApiClient, (world["a"]["id"], client_id))
        assert row.secret_hash == credentials.secret_hash(secret) and secret.encode() not in row.secret_hash
        hashes = {t.token_hash for t in db.session.query(ApiToken).filter_by(client_ref=row.id)}
        assert credentials.token_hash(narrow["access_token"]) in hashes


def test_tokens_expire_and_are_revoked_and_introspected(app, client, world):
    client_id, secret = make_client(app, world["a"]["id"], ["devices:view"])
    other_id, other_secret = make_client(app, world["a"]["id"], ["devices:view"])
    token = get_token(client, client_id, secret).get_json()["access_token"]
    seen = client.post("/oauth/introspect", data={"token": token}, headers=basic(client_id, secret)).get_json()
    assert seen["active"] is True and seen["client_id"] == client_id and seen["scope"] == "devices:view"
    # Another client (same tenant) learns nothing about it and cannot revoke it.
    assert client.post("/oauth/introspect", data={"token": token},
                       headers=basic(other_id, other_secret)).get_json() == {"active": False}
    assert client.post("/oauth/revoke", data={"token": token}, headers=basic(other_id, other_secret)).status_code == 200
    assert client.get("/api/v1/devices", headers=bearer(token)).status_code == 200
    assert client.post("/oauth/revoke", data={"token": token}, headers=basic(client_id, secret)).status_code == 200
    refused = client.get("/api/v1/devices", headers=bearer(token))
    assert refused.status_code == 401 and "invalid_token" in refused.headers["WWW-Authenticate"]
    assert refused.mimetype == "application/problem+json"
    assert client.post("/oauth/introspect", data={"token": token},
                       headers=basic(client_id, secret)).get_json() == {"active": False}
    # Expiry.
    expired = get_token(client, client_id, secret).get_json()["access_token"]
    with app.app_context(), tenant_scope(db.session, world["a"]["id"], actor="test:setup"):
        db.session.execute(db.text("UPDATE api_tokens SET expires_at = now() - interval '1 second' "
                                   "WHERE token_hash = :h"), {"h": credentials.token_hash(expired)})
        db.session.commit()
    assert client.get("/api/v1/devices", headers=bearer(expired)).status_code == 401


def test_rotation_keeps_the_old_secret_for_the_grace_period_and_disable_stops_tokens(app, client, world):
    client_id, secret = make_client(app, world["a"]["id"], ["devices:view"])
    token = get_token(client, client_id, secret).get_json()["access_token"]
    with app.test_request_context(), tenant_scope(db.session, world["a"]["id"], actor="test:setup"):
        tenant = db.session.get(Tenant, world["a"]["id"])
        row = services.get_client(TenantContext(tenant, None, ALL), client_id)
        new_secret = services.rotate_secret(TenantContext(tenant, None, ALL), row)
        db.session.commit()
    assert get_token(client, client_id, new_secret).status_code == 200
    assert get_token(client, client_id, secret).status_code == 200  # within the grace period
    with app.app_context(), tenant_scope(db.session, world["a"]["id"], actor="test:setup"):
        db.session.execute(db.text("UPDATE api_clients SET previous_secret_expires_at = now() - interval '1 second' "
                                   "WHERE id = :i"), {"i": client_id})
        db.session.execute(db.text("UPDATE api_clients SET disabled_at = now() WHERE id = :i"), {"i": client_id})
        db.session.commit()
    assert client.get("/api/v1/devices", headers=bearer(token)).status_code == 401  # disabled: tokens stop
    assert get_token(client, client_id, new_secret).status_code == 401
    with app.app_context(), tenant_scope(db.session, world["a"]["id"], actor="test:setup"):
        db.session.execute(db.text("UPDATE api_clients SET disabled_at = NULL WHERE id = :i"), {"i": client_id})
        db.session.commit()
    assert get_token(client, client_id, secret).status_code == 401  # grace over
    assert get_token(client, client_id, new_secret).status_code == 200


def test_another_tenants_ids_are_404_and_lists_hold_only_the_tenant(api):
    http, token, b = api["http"], api["token"], api["b"]
    headers = bearer(token)
    for url in (f"/api/v1/devices/{b['devices'][0]}", f"/api/v1/sites/{b['sites'][0]}"):
        assert http.get(url, headers=headers).status_code == 404
        assert http.patch(url, json={"name": "x"}, headers={**headers, "If-Match": "*"}).status_code == 404
    assert http.post(f"/api/v1/devices/{b['devices'][0]}/decommission", headers=headers).status_code == 404
    assert http.post("/api/v1/devices/bulk-status", json={"ids": [str(b["devices"][0])], "status": "error"},
                     headers=headers).status_code == 404
    created = http.post("/api/v1/devices", headers=headers, json={
        "name": "Sneaky", "type": "sensor", "serial_number": "SNEAKY-1", "site_id": str(b["sites"][0])})
    assert created.status_code == 422 and created.get_json()["errors"][0]["field"] == "site_id"
    ids = {d["id"] for d in http.get("/api/v1/devices", headers=headers).get_json()["items"]}
    assert ids == {str(d) for d in api["a"]["devices"]}


def test_site_restricted_client_sees_only_its_sites(app, client, factory, world):
    t = factory.tenant(members={"owner": world["users"]["owner"]}, sites=2, devices=2)
    token = token_for(app, client, t["id"], ["devices:view", "sites:view"], site_ids=[t["sites"][1]])
    items = client.get("/api/v1/devices", headers=bearer(token)).get_json()["items"]
    assert {i["id"] for i in items} == {str(d) for d in t["devices"][2:]}
    assert client.get(f"/api/v1/devices/{t['devices'][0]}", headers=bearer(token)).status_code == 404
    assert [s["id"] for s in client.get("/api/v1/sites", headers=bearer(token)).get_json()["items"]] == [str(t["sites"][1])]


# endpoint -> (method, url template, scope); every /api/v1 route must be here.
ROUTES = {
    "api.list_sites": ("GET", "/api/v1/sites", "sites:view"),
    "api.create_site": ("POST", "/api/v1/sites", "sites:write"),
    "api.get_site": ("GET", "/api/v1/sites/{site}", "sites:view"),
    "api.update_site": ("PATCH", "/api/v1/sites/{site}", "sites:write"),
    "api.delete_site": ("DELETE", "/api/v1/sites/{site}", "sites:write"),
    "api.archive_site": ("POST", "/api/v1/sites/{site}/archive", "sites:write"),
    "api.restore_site": ("POST", "/api/v1/sites/{site}/restore", "sites:write"),
    "api.list_devices": ("GET", "/api/v1/devices", "devices:view"),
    "api.create_device": ("POST", "/api/v1/devices", "devices:write"),
    "api.get_device": ("GET", "/api/v1/devices/{device}", "devices:view"),
    "api.update_device": ("PATCH", "/api/v1/devices/{device}", "devices:write"),
    "api.decommission_device": ("POST", "/api/v1/devices/{device}/decommission", "devices:write"),
    "api.bulk_status": ("POST", "/api/v1/devices/bulk-status", "devices:status"),
    "api.record_events": ("POST", "/api/v1/events", "events:write"),
    "members_api.list_roles": ("GET", "/api/v1/roles", "members:view"),
    "members_api.list_members": ("GET", "/api/v1/members", "members:view"),
    "members_api.get_member": ("GET", "/api/v1/members/{member}", "members:view"),
    "members_api.update_member": ("PATCH", "/api/v1/members/{member}", "members:manage"),
    "integrations_api.list_integrations": ("GET", "/api/v1/integrations", "integrations:view"),
    "integrations_api.create_integration": ("POST", "/api/v1/integrations", "integrations:manage"),
    "integrations_api.get_integration": ("GET", "/api/v1/integrations/{integration}", "integrations:view"),
    "integrations_api.delete_integration": ("DELETE", "/api/v1/integrations/{integration}", "integrations:manage"),
    "integrations_api.update_integration": ("PATCH", "/api/v1/integrations/{integration}", "integrations:manage"),
    "integrations_api.replace_credentials": ("POST", "/api/v1/integrations/{integration}/credentials",
                                             "integrations:manage"),
    "integrations_api.enable_integration": ("POST", "/api/v1/integrations/{integration}/enable", "integrations:manage"),
    "integrations_api.disable_integration": ("POST", "/api/v1/integrations/{integration}/disable",
                                             "integrations:manage"),
    "integrations_api.test_integration": ("POST", "/api/v1/integrations/{integration}/test", "integrations:manage"),
    "integrations_api.sync_integration": ("POST", "/api/v1/integrations/{integration}/sync", "integrations:manage"),
    "integrations_api.integration_log": ("GET", "/api/v1/integrations/{integration}/log", "integrations:view"),
    "integrations_api.replay_delivery": ("POST", "/api/v1/integrations/{integration}/log/{entry}/replay",
                                         "integrations:manage"),
}


def test_every_api_route_is_in_the_scope_matrix(app):
    rules = {r.endpoint for r in app.url_map.iter_rules()
             if r.rule.startswith("/api/v1") and not r.rule.startswith("/api/v1/agent/")} - {"api.openapi_document"}
    assert rules == set(ROUTES)
    for endpoint, (_, _, scope) in ROUTES.items():
        assert app.view_functions[endpoint].scope.value == scope


@pytest.mark.parametrize("scope", EVERYTHING)
def test_scope_matrix(app, client, world, scope):
    """A token with only `scope` reaches exactly the routes that need it (403 elsewhere), and
    another tenant's ids are 404 wherever it reaches."""
    a, b = world["a"], world["b"]
    members = {a["id"]: world["users"]["viewer"].id, b["id"]: world["b_owner"].id}
    token = token_for(app, client, a["id"], [scope])
    failures = []
    for endpoint, (method, template, needed) in ROUTES.items():
        for tenant, expect_foreign in ((a, False), (b, True)):
            # No integration exists: an id of none (404 once the scope lets the request through).
            url = template.format(site=tenant["sites"][0], device=tenant["devices"][0], integration=uuid.UUID(int=1),
                                  entry=uuid.UUID(int=2), member=members[tenant["id"]])
            got = client.open(url, method=method, json={}, headers=bearer(token)).status_code
            if needed != scope:
                if got != 403:
                    failures.append(f"{method} {url} ({endpoint}): expected 403, got {got}")
            elif expect_foreign and "{" in template:
                if got != 404:
                    failures.append(f"{method} {url} foreign: expected 404, got {got}")
            elif got in (401, 403) or got >= 500:
                failures.append(f"{method} {url}: holds {scope}, got {got}")
    assert failures == []


def test_create_read_update_with_etag_and_idempotency(api):
    http, headers, a = api["http"], bearer(api["token"]), api["a"]
    payload = {"name": "API device", "type": "sensor", "serial_number": "API-1", "site_id": str(a["sites"][0]),
               "specs": {"zones": 3}}
    first = http.post("/api/v1/devices", json=payload, headers={**headers, "Idempotency-Key": "create-1"})
    assert first.status_code == 201 and first.headers["Location"].endswith(first.get_json()["id"])
    again = http.post("/api/v1/devices", json=payload, headers={**headers, "Idempotency-Key": "create-1"})
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    changed = http.post("/api/v1/devices", json={**payload, "name": "Other"},
                        headers={**headers, "Idempotency-Key": "create-1"})
    assert changed.status_code == 422
    # Without a key, the same serial is refused by the rule, as on the page.
    dup = http.post("/api/v1/devices", json=payload, headers=headers)
    assert dup.status_code == 422 and dup.mimetype == "application/problem+json"
    assert dup.get_json()["errors"] == [{"field": "serial_number", "detail": dup.get_json()["detail"]}]

    url = f"/api/v1/devices/{first.get_json()['id']}"
    read = http.get(url, headers=headers)
    etag = read.headers["ETag"]
    assert http.patch(url, json={"name": "Renamed"}, headers=headers).status_code == 428
    updated = http.patch(url, json={"name": "Renamed"}, headers={**headers, "If-Match": etag})
    assert updated.status_code == 200 and updated.get_json()["name"] == "Renamed"
    assert updated.get_json()["specs"] == {"zones": 3}
    assert http.get(url, headers=headers).headers["ETag"] == updated.headers["ETag"] != etag
    stale = http.patch(url, json={"name": "Lost update"}, headers={**headers, "If-Match": etag})
    assert stale.status_code == 412 and stale.get_json()["status"] == 412
    bad = http.patch(url, json={"type": "toaster", "name": ""}, headers={**headers, "If-Match": updated.headers["ETag"]})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.get_json()["errors"]} == {"type", "name"}
    # The audit log names the client.
    with api["app"].app_context(), tenant_scope(db.session, a["id"], actor="test:setup"):
        from portal.audit.models import AuditLog
        row = db.session.query(AuditLog).filter_by(resource_id=first.get_json()["id"], action="device.create").one()
        assert row.user_id is None and row.details["actor"]["type"] == "api_client"
        assert row.details["actor"]["name"] == "test client"


def test_device_list_filters_sorts_and_cursor_pages(app, client, factory, world):
    t = factory.tenant(members={"owner": world["users"]["owner"]}, sites=1, devices=7)
    token = token_for(app, client, t["id"], ["devices:view"])
    seen, url = [], "/api/v1/devices?limit=3&sort=name&dir=desc"
    while url:
        page = client.get(url, headers=bearer(token))
        assert page.status_code == 200
        seen += [d["name"] for d in page.get_json()["items"]]
        url = page.get_json()["next"]
    assert seen == sorted(seen, reverse=True) and len(seen) == 7
    found = client.get("/api/v1/devices?q=device 0-3", headers=bearer(token)).get_json()["items"]
    assert [d["name"] for d in found] == [f"Device 0-3 {t['slug']}"]
    assert client.get("/api/v1/devices?limit=0", headers=bearer(token)).status_code == 422


def test_sites_and_bulk_status_through_the_services(api):
    http, headers, a = api["http"], bearer(api["token"]), api["a"]
    site = http.post("/api/v1/sites", json={"name": "API site", "timezone": "Europe/Paris",
                                            "operating_hours": {"mon": "08:00-18:00"}}, headers=headers)
    assert site.status_code == 201, site.get_data(as_text=True)
    assert http.post("/api/v1/sites", json={"name": "Zoned", "timezone": "Mars/Olympus"},
                     headers=headers).get_json()["errors"][0]["field"] == "timezone"
    busy = http.delete(f"/api/v1/sites/{a['sites'][0]}", headers={**headers, "If-Match": "*"})
    assert busy.status_code == 409 and "still has 2 devices" in busy.get_json()["detail"]
    site_url = f"/api/v1/sites/{site.get_json()['id']}"
    assert http.post(site_url + "/archive", headers=headers).get_json()["archived"] is True
    assert http.delete(site_url, headers={**headers, "If-Match": "*"}).status_code == 204
    done = http.post("/api/v1/devices/bulk-status", json={"ids": [str(d) for d in a["devices"]], "status": "maintenance"},
                     headers=headers)
    assert done.status_code == 200 and done.get_json() == {"changed": 2}
    assert http.post("/api/v1/devices", data="name=x", headers=headers).status_code == 415
    assert http.post("/api/v1/devices", data="{nope", headers=headers, content_type="application/json").status_code == 400


def test_plan_limit_applies_to_the_api(app, client, factory, world):
    t = factory.tenant(members={"owner": world["users"]["owner"]}, sites=1, devices=2, max_devices=2)
    token = token_for(app, client, t["id"], ["devices:write", "devices:view"])
    refused = client.post("/api/v1/devices", headers=bearer(token), json={
        "name": "One too many", "type": "sensor", "serial_number": "LIMIT-3", "site_id": str(t["sites"][0])})
    assert refused.status_code == 422 and "plan allows 2" in refused.get_json()["detail"]
    # Nor may an edit bring a decommissioned device back past the limit (it did, unchecked).
    device = str(t["devices"][0])
    assert client.post(f"/api/v1/devices/{device}/decommission", headers=bearer(token)).status_code == 200
    assert client.post("/api/v1/devices", headers=bearer(token), json={
        "name": "Replacement", "type": "sensor", "serial_number": "LIMIT-4",
        "site_id": str(t["sites"][0])}).status_code == 201
    back = client.patch(f"/api/v1/devices/{device}", headers={**bearer(token), "If-Match": "*"},
                        json={"status": "online"})
    assert back.status_code == 422 and "plan allows 2" in back.get_json()["detail"]


def test_rate_limit_answers_429_with_retry_after(db_urls, world):
    limited = make_app(db_urls, API_RATE_LIMIT="3 per minute")
    http = limited.test_client()
    client_id, secret = make_client(limited, world["a"]["id"], ["devices:view"])
    token = get_token(http, client_id, secret).get_json()["access_token"]
    codes = [http.get("/api/v1/devices", headers=bearer(token)) for _ in range(4)]
    assert [c.status_code for c in codes] == [200, 200, 200, 429]
    assert 1 <= int(codes[-1].headers["Retry-After"]) <= 60
    assert codes[-1].mimetype == "application/problem+json"


def test_csrf_spares_bearer_requests_and_still_guards_cookie_routes(api):
    http, a = api["http"], api["a"]
    # A bearer request has no CSRF token and needs none.
    assert http.post("/api/v1/devices/bulk-status", json={"ids": [str(a["devices"][0])], "status": "error"},
                     headers=bearer(api["token"])).status_code == 200
    # A signed-in browser session is no credential for the API...
    login(http, api["world"]["users"]["owner"].email)
    assert http.post("/api/v1/devices/bulk-status", json={"ids": [str(a["devices"][0])], "status": "online"}
                     ).status_code == 401
    # ...and cookie routes still refuse a POST without the CSRF token.
    url = f"/t/{a['slug']}/devices/{a['devices'][0]}/status"
    assert http.post(url, data={"status": "online"}).status_code == 400
    assert http.post(url, data={"status": "online", "csrf_token": csrf_token(http)}).status_code == 303
    assert http.post(f"/t/{a['slug']}/api-clients/new", data={"name": "x", "scopes": ["devices:view"]}).status_code == 400


def test_management_pages_create_shows_secret_once_and_caps_scopes(app, client, factory, world):
    admin = world["users"]["admin"]
    login(client, admin.email)
    slug = world["a"]["slug"]
    token = csrf_token(client)
    too_much = client.post(f"/t/{slug}/api-clients/new", data={"name": "Sync", "scopes": ["tenant:manage"],
                                                              "csrf_token": token})
    assert too_much.status_code == 422 and "more than you hold" in too_much.get_data(as_text=True)
    made = client.post(f"/t/{slug}/api-clients/new", data={"name": "Sync", "scopes": ["devices:view"],
                                                          "csrf_token": token})
    assert made.status_code == 303  # POST-redirect-GET: a reload resubmits nothing
    shown = client.get(made.headers["Location"])
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    html = shown.get_data(as_text=True)
    client_id = re.search(r'id="client-id">([^<]+)<', html).group(1)
    secret = re.search(r'id="client-secret"[^>]*value="([^"]+)"', html).group(1)
    again = client.get(made.headers["Location"]).get_data(as_text=True)  # a reload: shown once
    assert secret not in again and "This secret was shown once" in again
    listing = client.get(f"/t/{slug}/api-clients/").get_data(as_text=True)
    assert client_id in listing and secret not in listing
    assert get_token(client, client_id, secret).status_code == 200
    rotated = client.post(f"/t/{slug}/api-clients/{client_id}/rotate", data={"csrf_token": token},
                          follow_redirects=True)
    assert "keeps working for 24 hours" in rotated.get_data(as_text=True)
    assert client.post(f"/t/{slug}/api-clients/{client_id}/delete", data={"csrf_token": token}).status_code == 303
    assert get_token(client, client_id, secret).status_code == 401
    audit = client.get(f"/t/{slug}/audit/").get_data(as_text=True)
    assert "api_client" in audit or "Sync" in audit


def test_cli_creates_a_client(app, world):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["api-clients", "create", "--tenant", world["a"]["slug"], "--name", "CI",
                                 "--scopes", "devices:view devices:write"])
    assert result.exit_code == 0, result.output
    client_id = re.search(r"client_id: (\S+)", result.output).group(1)
    secret = re.search(r"client_secret: (\S+)", result.output).group(1)
    token = get_token(app.test_client(), client_id, secret).get_json()
    assert set(token["scope"].split()) == {"devices:view", "devices:write"}
    bad = runner.invoke(args=["api-clients", "create", "--tenant", world["a"]["slug"], "--name", "CI",
                              "--scopes", "nonsense:yes"])
    assert bad.exit_code != 0


def test_openapi_document_and_unknown_routes_are_problems(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    assert doc["paths"]["/api/v1/devices"]["get"]["security"] == [{"oauth2": ["devices:view"]}]
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    assert client.get("/api/v1/devices").status_code == 401
    assert time.time()


def test_prune_removes_long_expired_tokens_and_idempotency_records(app, client, world):
    from portal.api.tasks import prune
    from portal.jobs.engine import bind
    token = token_for(app, client, world["a"]["id"], ["devices:view"])
    with app.app_context(), tenant_scope(db.session, world["a"]["id"], actor="test:setup"):
        db.session.execute(db.text("UPDATE api_tokens SET expires_at = now() - interval '2 days' "
                                   "WHERE token_hash = :h"), {"h": credentials.token_hash(token)})
        db.session.commit()
    bind(app)
    assert prune(int(time.time())) >= 1
    with app.app_context(), tenant_scope(db.session, world["a"]["id"], actor="test:setup"):
        left = db.session.execute(db.text("SELECT count(*) FROM api_tokens WHERE token_hash = :h"),
                                  {"h": credentials.token_hash(token)}).scalar()
    assert left == 0


def test_custom_events_are_recorded_all_or_none(api):
    """POST /api/v1/events: a valid batch lands in the tenant's analytics; one bad event refuses
    the whole batch, naming it by JSON pointer; more than 1,000 is refused."""
    app, http, headers = api["app"], api["http"], bearer(api["token"])

    def recorded(kind):
        with app.app_context(), tenant_scope(db.session, api["a"]["id"], actor="test:setup"):
            return db.session.execute(sa.text("SELECT count(*) FROM analytics_events WHERE event_type = :t"),
                                      {"t": kind}).scalar()

    ok = http.post("/api/v1/events", headers=headers,
                   json={"events": [{"type": "door.opened", "properties": {"door": 3}}] * 2})
    assert ok.status_code == 201 and ok.get_json() == {"recorded": 2}
    assert recorded("door.opened") == 2
    bad = http.post("/api/v1/events", headers=headers,
                    json={"events": [{"type": "door.closed"}, {"type": "Not A Type"}]})
    assert bad.status_code == 422 and bad.mimetype == "application/problem+json"
    assert [e["field"] for e in bad.get_json()["errors"]] == ["/events/1/type"]
    assert recorded("door.closed") == 0
    many = http.post("/api/v1/events", headers=headers, json={"events": [{"type": "door.opened"}] * 1001})
    assert many.status_code == 422 and recorded("door.opened") == 2


def test_api_clients_need_the_plan_s_api_feature_and_room(app, factory):
    """A plan without the API refuses clients, and max_api_clients (their own limit, not the
    integrations') is a hard limit (the message says why)."""
    from portal.rules import RuleViolation
    free = factory.tenant(plan="free", max_api_clients=5)
    with pytest.raises(RuleViolation, match="does not include the API"):
        make_client(app, free["id"], ["devices:view"])
    small = factory.tenant(max_api_clients=1, max_integrations=0)
    make_client(app, small["id"], ["devices:view"])
    with pytest.raises(RuleViolation, match="allows 1 API clients and 0 are free"):
        make_client(app, small["id"], ["devices:view"], name="second")
