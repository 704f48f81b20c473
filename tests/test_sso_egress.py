"""Organizations' single sign-on under the outbound-request policy (portal.egress): every request the
portal makes to an organization's provider (discovery, token, key set, userinfo) is resolved, checked
and pinned like an integration's. An organization admin chooses the issuer and its discovery document
chooses the endpoints, so neither a DNS answer changed after saving nor a document naming an internal
address may make the portal reach its own network.

No internet: "internal services" are recorders on loopback that count every connection they accept;
an allowed provider is a loopback port that INTEGRATIONS_ALLOW_PRIVATE lists explicitly (as an operator
would list one internal system), everything else private stays refused. A real DNS server on loopback
(tests/dns_support.py) gives the answers, changing ones included."""
from __future__ import annotations

import html
import json
import logging
import secrets
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import oidc_provider_mock
import pytest
import sqlalchemy as sa

from conftest import Factory, csrf_from, csrf_token, login, make_app
from dns_support import DNSTestServer
from portal import egress
from portal.config import allow_private_setting
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.sso import provider as sso_provider
from portal.sso.models import SsoConnection, SsoDomain
from test_sso_org import Provider, domain, flashed, member, organization, sso

REFUSED = ("Your organization's single sign-on provider is at an address this portal will not connect to "
           "(a private or internal network)")


class Recorder:
    """An HTTP server on 127.0.0.1 that counts every connection it accepts and records every request;
    it serves `discovery` at /.well-known/openid-configuration and {} elsewhere."""

    def __init__(self):
        self.connections = 0
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Host header)
        self.discovery: dict = {}
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = urlsplit(self.path).path
                recorder.requests.append((self.command, path, self.headers.get("Host")))
                body = json.dumps(recorder.discovery if path.endswith("/openid-configuration") else {}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request, client_address):
                recorder.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.close()


@pytest.fixture
def internal():
    """A service on the portal's own network that nobody may make the portal reach."""
    server = Recorder()
    yield server
    server.close()


@pytest.fixture(scope="module")
def dns():
    server = DNSTestServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def strict_app(db_urls, app, dns):  # `app` has migrated the database
    """The portal as in production: no private destination allowed (tests list one port at most)."""
    return make_app(db_urls, DNS_NAMESERVERS=dns.nameserver, INTEGRATIONS_ALLOW_PRIVATE="0")


@pytest.fixture
def make(strict_app, password_hash) -> Factory:
    return Factory(strict_app, password_hash)


@pytest.fixture
def allow(strict_app, monkeypatch):
    """allow("127.0.0.1:PORT"): let outbound requests reach that one place for this test."""
    def set_to(value):
        monkeypatch.setitem(strict_app.config, "INTEGRATIONS_ALLOW_PRIVATE", allow_private_setting(value))
    return set_to


def host() -> str:
    return f"idp-{secrets.token_hex(4)}.example.com"


def verified_domain(app, tenant_id, name: str) -> None:
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        db.session.add(SsoDomain(tenant_id=tenant_id, domain=name, token="t", verified_at=sa.func.now()))
        db.session.commit()


def start(client, email: str):
    return client.get("/login/sso/org", query_string={"email": email})


# --- Every call Authlib makes goes through egress -------------------------------------------------

def test_every_call_authlib_makes_for_a_connection_goes_through_egress(strict_app, dns, internal, allow):
    name = host()
    dns.records[(f"{name}.", "A")] = ["127.0.0.1"]
    issuer = f"http://{name}:{internal.port}"
    connection = SsoConnection(tenant_id=uuid.uuid4(), id=uuid.uuid4(), name="x", issuer=issuer, client_id="portal")
    with strict_app.app_context():
        client = sso_provider.client_for(connection)
        with pytest.raises(egress.Refused, match=rf"{name} resolves to this machine \(loopback\) \(127\.0\.0\.1\)"):
            client.load_server_metadata()  # discovery

        # A document as if discovery had given it, naming internal places for everything else.
        client.server_metadata.update({"issuer": issuer, "_loaded_at": 1,
                                       "token_endpoint": f"http://127.0.0.1:{internal.port}/token",
                                       "jwks_uri": "http://169.254.169.254/latest/meta-data/jwks",
                                       "userinfo_endpoint": f"http://[::ffff:127.0.0.1]:{internal.port}/userinfo"})
        with pytest.raises(egress.Refused, match="link-local"):
            client.fetch_jwk_set()
        with pytest.raises(egress.Refused, match=r"127\.0\.0\.1 points to this machine"):
            client.fetch_access_token(redirect_uri="https://portal.example.com/cb", code="c", code_verifier="v" * 43)
        with pytest.raises(egress.Refused, match="written as IPv6"):
            client.userinfo(token={"access_token": "a", "token_type": "Bearer"})
        assert internal.connections == 0

        # Allowed (one port listed), the same request arrives, to the address DNS gave, with the name
        # as Host: the system resolver, which requests would ask, has never heard of this name.
        allow(f"127.0.0.1:{internal.port}")
        internal.discovery = {"issuer": issuer}
        assert sso_provider.client_for(connection).load_server_metadata()["issuer"] == issuer
    assert internal.requests == [("GET", "/.well-known/openid-configuration", f"{name}:{internal.port}")]


# --- A name that changes its answer after the issuer was saved ------------------------------------

@pytest.mark.parametrize("later, reason", [("127.0.0.1", "this machine (loopback)"),
                                           ("169.254.169.254", "a link-local address (where cloud metadata")])
def test_an_issuer_that_resolves_to_an_internal_address_after_saving_is_refused(strict_app, make, dns, internal,
                                                                                later, reason, caplog):
    name = host()
    answer = {"A": ["93.184.215.14"]}  # public-looking: the check on saving passes
    dns.records[(f"{name}.", "A")] = lambda: answer["A"]
    owner = make.user()
    tenant = make.tenant(members={"owner": owner})
    admin = strict_app.test_client()
    login(admin, owner.email)
    base = f"/t/{tenant['slug']}/settings/sso"
    form = admin.get(f"{base}/new").get_data(as_text=True)
    issuer = f"http://{name}:{internal.port}"
    made = admin.post(f"{base}/new", data={"csrf_token": csrf_from(form), "name": "Acme", "kind": "oidc",
                                           "issuer": issuer, "client_id": "portal", "default_role": "member"})
    assert made.status_code == 303, made.get_data(as_text=True)[:500]
    show = made.headers["Location"]
    assert admin.post(f"{show}/enable", data={"csrf_token": csrf_token(admin)}).status_code == 303
    where = domain()
    verified_domain(strict_app, tenant["id"], where)

    answer["A"] = [later]  # DNS rebinding: the same name, now pointing inside
    person = strict_app.test_client()
    with caplog.at_level(logging.INFO):
        refused = start(person, f"pat@{where}")
    assert refused.status_code == 303 and refused.headers["Location"].startswith("/login")
    assert REFUSED in html.unescape(flashed(person))
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("refused" in line and f"{name} resolves to {reason}" in line for line in logged), logged

    # The admin's "Test connection" says why, in words.
    tested = admin.post(f"{show}/test", data={"csrf_token": csrf_token(admin)})
    assert tested.status_code == 303 and tested.headers["Location"].endswith(show.rsplit("/", 1)[-1])
    page = html.unescape(admin.get(show).get_data(as_text=True))
    assert "single sign-on cannot reach this provider" in page and f"{name} resolves to {reason}" in page
    assert internal.connections == 0 and internal.requests == []

    # Saving it again now is refused too (the form's own check), with the same sentence.
    form = admin.get(show).get_data(as_text=True)
    again = admin.post(show, data={"csrf_token": csrf_from(form), "name": "Acme", "kind": "oidc", "issuer": issuer,
                                   "client_id": "portal", "default_role": "member"})
    assert again.status_code == 422 and f"{name} resolves to {reason}" in html.unescape(again.get_data(as_text=True))


# --- A discovery document naming internal endpoints -----------------------------------------------

def _provider_at(recorder: Recorder, dns, allow, **endpoints) -> str:
    """The recorder as an allowed provider (its one port listed) whose document names `endpoints`."""
    name = host()
    dns.records[(f"{name}.", "A")] = ["127.0.0.1"]
    issuer = f"http://{name}:{recorder.port}"
    recorder.discovery = {"issuer": issuer, "authorization_endpoint": f"{issuer}/authorize",
                          "token_endpoint": f"{issuer}/token", "jwks_uri": f"{issuer}/jwks",
                          "userinfo_endpoint": f"{issuer}/userinfo", **endpoints}
    allow(f"127.0.0.1:{recorder.port}")
    return issuer


@pytest.mark.parametrize("endpoint, label, why", [
    ("token_endpoint", "token endpoint", "The address 127.0.0.1 points to this machine (loopback)"),
    ("jwks_uri", "key set (jwks_uri)", "The address 169.254.169.254 points to a link-local address"),
    ("userinfo_endpoint", "userinfo endpoint", "The address 10.0.0.7 points to a private network"),
])
def test_a_discovery_document_naming_an_internal_endpoint_is_refused(strict_app, make, dns, recorder, internal,
                                                                      allow, endpoint, label, why):
    internal_url = {"token_endpoint": f"http://127.0.0.1:{internal.port}/token",
                    "jwks_uri": "http://169.254.169.254/latest/meta-data/",
                    "userinfo_endpoint": "http://10.0.0.7/userinfo"}[endpoint]
    issuer = _provider_at(recorder, dns, allow, **{endpoint: internal_url})
    org = organization(strict_app, make, type("P", (), {"issuer": issuer}), verified=domain())
    person = strict_app.test_client()
    refused = start(person, f"pat@{org['domain']}")
    assert refused.status_code == 303 and REFUSED in html.unescape(flashed(person))

    admin = strict_app.test_client()
    login(admin, org["owner"].email)
    show = f"/t/{org['slug']}/settings/sso/{org['connection']}"
    assert admin.post(f"{show}/test", data={"csrf_token": csrf_token(admin)}).status_code == 303
    page = html.unescape(admin.get(show).get_data(as_text=True))
    assert f"The provider's discovery document names a {label} the portal will not connect to: {why}" in page
    # Only the allowed provider's document was read; nothing went to the internal place.
    assert {path for _, path, _ in recorder.requests} == {"/.well-known/openid-configuration"}
    assert internal.connections == 0


def test_a_token_endpoint_that_rebinds_between_the_check_and_the_request_is_refused(strict_app, make, dns, recorder,
                                                                                   allow, caplog):
    """The check before sending the person away passes; the name then answers an internal address
    when the token is fetched. The request resolves and checks on its own: refused, nothing sent."""
    tokens = f"tokens-{secrets.token_hex(4)}.example.com"
    asked = []

    def answer():
        asked.append(1)
        return ["127.0.0.1"] if len(asked) <= 2 else ["169.254.169.254"]  # the checks at start and callback

    dns.records[(f"{tokens}.", "A")] = answer
    issuer = _provider_at(recorder, dns, allow, token_endpoint=f"http://{tokens}:{recorder.port}/token")
    org = organization(strict_app, make, type("P", (), {"issuer": issuer}), verified=domain())
    person = strict_app.test_client()
    started = start(person, f"pat@{org['domain']}")
    assert started.status_code == 302 and started.headers["Location"].startswith(f"{issuer}/authorize?")
    state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
    with caplog.at_level(logging.INFO):
        back = person.get("/login/sso/org/callback", query_string={"state": state, "code": "a-code"})
    assert back.status_code == 303 and REFUSED in html.unescape(flashed(person))
    assert len(asked) == 3
    assert ("POST", "/token", f"{tokens}:{recorder.port}") not in recorder.requests
    assert not any(method == "POST" for method, _, _ in recorder.requests)
    assert any(f"{tokens} resolves to a link-local address" in r.getMessage() for r in caplog.records
               if r.levelno >= logging.WARNING)


# --- The normal flow, through egress, with only the provider's port allowed ------------------------

def test_the_sign_in_works_through_egress_with_only_the_providers_port_allowed(strict_app, make, allow):
    with oidc_provider_mock.run_server_in_thread() as server:
        provider = Provider(f"http://127.0.0.1:{server.server_port}")
        org = organization(strict_app, make, provider, verified=domain())
        email = f"pat-{secrets.token_hex(3)}@{org['domain']}"
        sub = provider.user(email)
        person = strict_app.test_client()
        refused = start(person, email)  # nothing allowed yet: the provider on loopback is refused
        assert refused.status_code == 303 and REFUSED in html.unescape(flashed(person))
        allow(f"127.0.0.1:{server.server_port}")
        done = sso(person, provider, email, sub)
        assert done.status_code == 303 and done.headers["Location"].endswith(f"/t/{org['slug']}/")
        assert member(strict_app, org, email) is not None
