"""The API against its own document (issue 21, items 6 and 7): scopes at /oauth/token, query
parameters outside the document, malformed cursors, and a document that covers every route a
machine can call (the agents' API and /oauth/* included)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from test_api import ALL, basic, bearer, get_token, make_client, token_for

from portal.agents import credentials as agent_credentials
from portal.database.context import tenant_scope
from portal.devices.models import Device
from portal.extensions import db
from portal.tenancy import TenantContext
from portal.tenants.models import Tenant


def agent_secret(app, tenant_id, device_id, gateway=False) -> str:
    with app.test_request_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        ctx = TenantContext(db.session.get(Tenant, tenant_id), None, ALL)
        device = db.session.get(Device, (tenant_id, device_id))
        secret = agent_credentials.issue(ctx, device, gateway=gateway)
        db.session.commit()
    return secret


def _tokens_of(app, tenant_id, client_id) -> int:
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        return db.session.execute(sa.text("SELECT count(*) FROM api_tokens WHERE client_ref = :c"),
                                  {"c": client_id}).scalar()


@pytest.mark.parametrize("scope", ["devices:write", "devices:view devices:write", "nonsense:yes",
                                   "devices:view DEVICES:VIEW", "tenant:manage", "dévices:view ÷"])
def test_a_scope_the_client_does_not_hold_is_invalid_scope(app, client, world, scope):
    """RFC 6749 5.2: 400 invalid_scope, and no token, rather than a token with less."""
    client_id, secret = make_client(app, world["a"]["id"], ["devices:view", "sites:view"])
    for form in (False, True):
        response = get_token(client, client_id, secret, scope=scope, form=form)
        assert response.status_code == 400, response.get_data(as_text=True)
        assert response.get_json()["error"] == "invalid_scope"
        assert response.headers["Cache-Control"] == "no-store"
    assert _tokens_of(app, world["a"]["id"], client_id) == 0
    held = get_token(client, client_id, secret, scope="devices:view").get_json()
    assert held["scope"] == "devices:view"
    for everything in (None, " \r\n "):  # none asked for, or blank: all of the client's scopes
        granted = get_token(client, client_id, secret, scope=everything).get_json()["scope"]
        assert set(granted.split()) == {"devices:view", "sites:view"}


DEVICE_QUERIES = [
    ("type=null", "type"), ("type=", "type"), ("status=lost", "status"), ("status=ONLINE", "status"),
    ("dir=sideways", "dir"), ("sort=price", "sort"), ("site=not-a-uuid", "site"), ("site=null", "site"),
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=ten", "limit"), ("limit=2.5", "limit"),
    ("q=" + "x" * 101, "q"), ("cursor=" + "A" * 501, "cursor"),
    ("stauts=online", "stauts"), ("status=online&status=error", "status"),
]
SITE_QUERIES = [("archived=null", "archived"), ("archived=yes", "archived"), ("archived=", "archived"),
                ("limit=5", "limit"), ("archived=true&archived=false", "archived")]


@pytest.mark.parametrize("url, parameter", [("/api/v1/devices?" + q, p) for q, p in DEVICE_QUERIES]
                         + [("/api/v1/sites?" + q, p) for q, p in SITE_QUERIES])
def test_query_parameters_outside_the_document_are_422_naming_them(api_token, client, url, parameter):
    response = client.get(url, headers=bearer(api_token))
    assert response.status_code == 422, (url, response.status_code, response.get_data(as_text=True)[:200])
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == 422 and [e["field"] for e in problem["errors"]] == [parameter]


def test_a_nul_in_the_query_is_the_documented_400(api_token, client):
    """The app refuses NUL before any view (web.refuse_nul_characters); the document says so."""
    doc = client.get("/api/v1/openapi.json").get_json()
    for url, path in (("/api/v1/devices?q=a%00b", "/api/v1/devices"), ("/api/v1/sites?cursor=%00", "/api/v1/sites")):
        response = client.get(url, headers=bearer(api_token))
        assert response.status_code == 400 and response.mimetype == "application/problem+json"
        assert "400" in doc["paths"][path]["get"]["responses"]


def test_documented_query_parameters_still_work(api_token, client, world):
    site = world["a"]["sites"][0]
    for url in (f"/api/v1/devices?type=sensor&status=online&dir=desc&sort=last_seen&site={site}&limit=200&q=Dev",
                "/api/v1/devices?cursor=", "/api/v1/sites?archived=true", "/api/v1/sites?archived=false"):
        assert client.get(url, headers=bearer(api_token)).status_code == 200, url


@pytest.mark.parametrize("cursor", ["garbage", "eyJhIjoxfQ", "WyJ4Il0", "WyJ4Iiwibm90LWEtdXVpZCJd", "__4"])
def test_a_malformed_cursor_is_refused_by_both_lists(api_token, client, cursor):
    """The device list used to start over at page 1; both lists now name the cursor. (A site
    cursor is a name: any text is a position, only undecodable ones are malformed; "__4" is
    base64 for bytes that are not UTF-8. Percent-escaped bytes that are not UTF-8 are refused
    earlier, as a 400, for every URL: tests/test_hostile_input.py.)"""
    sites = [f"/api/v1/sites?cursor={cursor}"] if cursor in ("garbage", "__4") else []
    for url in [f"/api/v1/devices?cursor={cursor}"] + sites:
        response = client.get(url, headers=bearer(api_token))
        assert response.status_code == 422, (url, response.get_data(as_text=True)[:200])
        assert response.get_json()["errors"][0]["field"] == "cursor"


def test_a_cursor_of_another_sort_is_refused_and_next_links_work(app, client, factory, world):
    t = factory.tenant(members={"owner": world["users"]["owner"]}, sites=1, devices=5)
    token = token_for(app, client, t["id"], ["devices:view"])
    first = client.get("/api/v1/devices?limit=2&sort=status", headers=bearer(token)).get_json()
    cursor = first["next"].split("cursor=")[1]
    assert client.get(first["next"], headers=bearer(token)).status_code == 200
    assert client.get(f"/api/v1/devices?limit=2&sort=last_seen&cursor={cursor}",
                      headers=bearer(token)).status_code == 422


@pytest.fixture
def api_token(app, client, world):
    return token_for(app, client, world["a"]["id"], ["devices:view", "sites:view"])


def test_agent_wait_outside_the_document_is_422(app, client, world):
    secret = agent_secret(app, world["a"]["id"], world["a"]["devices"][0])
    for wait in ("-1", "-0.5", "abc"):
        response = client.get(f"/api/v1/agent/tasks?wait={wait}", headers=bearer(secret))
        assert response.status_code == 422, (wait, response.status_code)
        assert response.get_json()["errors"] == [{"field": "wait", "detail": "Seconds to wait, 0 to 25."}]
    assert client.get("/api/v1/agent/tasks?wait=0", headers=bearer(secret)).status_code == 204


def test_the_document_covers_every_machine_route(app, client):
    """Every route under /api/ and /oauth/ is an operation of the document, with its security
    (but the consent page /oauth/authorize: HTML for people, in the oauth2 scheme's flows)."""
    doc = client.get("/api/v1/openapi.json").get_json()
    documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/", "/oauth/")) and rule.endpoint not in ("api.openapi_document",
                                                                                "connected_apps.authorize"):
            path = rule.rule
            for argument in rule.arguments:
                path = path.replace(f"<uuid:{argument}>", "{%s}" % argument).replace(f"<{argument}>", "{%s}" % argument)
            served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented
    schemes = doc["components"]["securitySchemes"]
    assert schemes["agentSecret"] == {**schemes["agentSecret"], "type": "http", "scheme": "bearer"}
    assert schemes["clientBasic"]["scheme"] == "basic"
    assert doc["paths"]["/api/v1/agent/heartbeat"]["post"]["security"] == [{"agentSecret": []}]
    assert doc["paths"]["/oauth/token"]["post"]["security"] == [{"clientBasic": []}, {}]
    token = doc["paths"]["/oauth/token"]["post"]
    assert "application/x-www-form-urlencoded" in token["requestBody"]["content"]
    assert set(token["responses"]) >= {"200", "400", "401"}
    listed = {p["name"] for p in doc["paths"]["/api/v1/devices"]["get"]["parameters"]}
    assert listed == {"q", "site", "type", "status", "sort", "dir", "limit", "cursor"}
    assert "422" in doc["paths"]["/api/v1/devices"]["get"]["responses"]


def test_oauth_endpoints_answer_as_documented(app, client, world):
    client_id, secret = make_client(app, world["a"]["id"], ["devices:view"])
    assert client.post("/oauth/token", data={"grant_type": "password"},
                       headers=basic(client_id, secret)).get_json()["error"] == "unsupported_grant_type"
    token = get_token(client, client_id, secret).get_json()["access_token"]
    assert client.post("/oauth/introspect", data={"token": token},
                       headers=basic(client_id, secret)).get_json()["active"] is True
