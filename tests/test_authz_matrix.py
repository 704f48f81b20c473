"""Authorization as data: every tenant-scoped route x method x role, from one table.

A route added without an entry here fails `test_every_tenant_route_has_expectations`.
"""
from __future__ import annotations

import pytest

from conftest import csrf_token, login

ROLES = ("owner", "admin", "member", "viewer", "nonmember", "anonymous")
READ_ALL = {"owner": 200, "admin": 200, "member": 200, "viewer": 200, "nonmember": 404, "anonymous": 302}

# (endpoint, method) -> expected status per role, for the role's own tenant.
EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("dashboard.index", "GET"): READ_ALL,
    ("sites.index", "GET"): READ_ALL,
    ("devices.index", "GET"): READ_ALL,
}

# Values for URL parameters other than the tenant slug, taken from the tenant under test.
PARAMS = {}


def tenant_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/t/<tenant_slug>"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def test_every_tenant_route_has_expectations(app):
    missing = [(r.endpoint, m) for r, m in tenant_rules(app) if (r.endpoint, m) not in EXPECTED]
    assert missing == [], f"add these routes to the authorization matrix: {missing}"
    stale = set(EXPECTED) - {(r.endpoint, m) for r, m in tenant_rules(app)}
    assert not stale, f"matrix entries for routes that no longer exist: {stale}"


@pytest.fixture(scope="module")
def matrix_world(app, password_hash):
    from conftest import Factory
    factory = Factory(app, password_hash)
    users = {role: factory.user(name=f"matrix {role}") for role in ("owner", "admin", "member", "viewer")}
    users["nonmember"] = factory.user(name="matrix outsider")
    home = factory.tenant(members={r: users[r] for r in ("owner", "admin", "member", "viewer")})
    foreign = factory.tenant(members={"owner": factory.user(name="foreign owner")})
    return {"users": users, "home": home, "foreign": foreign}


def _url(app, rule, tenant) -> str:
    values = {"tenant_slug": tenant["slug"]}
    for arg in rule.arguments - {"tenant_slug"}:
        values[arg] = PARAMS[arg](tenant)
    with app.test_request_context():
        return app.url_for(rule.endpoint, **values)


def _request(client, method, url):
    if method == "GET":
        return client.get(url)
    token = csrf_token(client) if client.get_cookie("session") else ""
    return client.open(url, method=method, data={"csrf_token": token})


@pytest.mark.parametrize("role", ROLES)
def test_matrix(app, matrix_world, role):
    client = app.test_client()
    if role != "anonymous":
        login(client, matrix_world["users"][role].email)
    failures = []
    for rule, method in tenant_rules(app):
        expected = EXPECTED[(rule.endpoint, method)][role]
        got = _request(client, method, _url(app, rule, matrix_world["home"])).status_code
        if got != expected:
            failures.append(f"{method} {rule.rule} own tenant: expected {expected}, got {got}")
        # Every role of the home tenant is a stranger to the foreign tenant: 404, or sign-in.
        foreign_expected = 302 if role == "anonymous" else 404
        got = _request(client, method, _url(app, rule, matrix_world["foreign"])).status_code
        if got != foreign_expected:
            failures.append(f"{method} {rule.rule} foreign tenant: expected {foreign_expected}, got {got}")
    assert failures == []


def test_unknown_slug_and_foreign_tenant_are_indistinguishable(app, matrix_world):
    client = app.test_client()
    login(client, matrix_world["users"]["owner"].email)
    foreign = client.get(f"/t/{matrix_world['foreign']['slug']}/")
    unknown = client.get("/t/no-such-tenant-anywhere/")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.get_data() == unknown.get_data()
