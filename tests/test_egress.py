"""Outbound requests (portal.egress) against real servers on loopback and a real DNS server
(tests/dns_support.py): what an attacker who controls a URL, a DNS answer or a redirect could make the
portal reach, and what a receiver sees. No internet: an "allowed" destination is a loopback port that
INTEGRATIONS_ALLOW_PRIVATE lists explicitly, the same setting an operator would use for one internal
system; everything else on loopback stays refused."""
from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask

from portal import config as config_module
from portal import egress


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request it gets and answers by path."""

    def __init__(self, tls_context: ssl.SSLContext | None = None, address: str = "127.0.0.1"):
        self.requests: list[dict] = []
        self.sni: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                receiver.requests.append({"method": self.command, "path": url.path, "headers": dict(self.headers),
                                          "body": body})
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                route = getattr(receiver, "route_" + url.path.strip("/").replace("-", "_"), receiver.route_ok)
                route(self, query)

            do_GET = do_POST = do_PUT = do_HEAD = _handle

        server_class = type("Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6}) \
            if ":" in address else ThreadingHTTPServer
        self.server = server_class((address, 0), Handler)
        self.server.daemon_threads = True
        if tls_context is not None:
            tls_context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.server.handle_error = lambda request, address: None  # a client that gave up is expected
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _send(handler, status, body=b"", headers=()):
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def route_ok(self, handler, query):
        self._send(handler, 200, b'{"ok": true}', [("Content-Type", "application/json"), ("X-Receiver", "yes")])

    def route_redirect(self, handler, query):
        self._send(handler, int(query.get("status", 302)), headers=[("Location", query["to"])])

    def route_loop(self, handler, query):
        self._send(handler, 302, headers=[("Location", "/loop")])

    def route_big(self, handler, query):
        self._send(handler, 200, b"x" * int(query["n"]))

    def route_big_unannounced(self, handler, query):
        # No Content-Length: the limit must hold while the body streams in.
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        for _ in range(int(query["n"]) // 1000):
            handler.wfile.write(b"x" * 1000)

    def route_slow(self, handler, query):
        time.sleep(float(query["s"]))
        self._send(handler, 200, b"late")

    def route_trickle(self, handler, query):
        # Headers at once, then a byte at a time: every read is quick, the whole is endless.
        handler.send_response(200)
        if query.get("length"):
            handler.send_header("Content-Length", "100000")
        else:  # the end is when the connection closes: a cut connection must not look like the end
            handler.send_header("Connection", "close")
        handler.end_headers()
        try:
            for _ in range(100000):
                handler.wfile.write(b"x")
                handler.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def other_receiver():
    server = Receiver()
    yield server
    server.close()


def context(allow_private=False, nameservers=""):
    """An app context with the two settings egress reads (no database: egress needs none)."""
    app = Flask("egress-test")
    app.config.update(INTEGRATIONS_ALLOW_PRIVATE=config_module.allow_private_setting(allow_private),
                      DNS_NAMESERVERS=nameservers, BASE_URL="https://portal.example.com")
    return app.app_context()


# --- Refused destinations ----------------------------------------------------------------------

@pytest.mark.parametrize("host, shown, reason", [
    ("127.0.0.1", "127.0.0.1", "this machine"),
    ("2130706433", "127.0.0.1", "this machine"),  # decimal
    ("0x7f.1", "127.0.0.1", "this machine"),  # hex, short form
    ("017700000001", "127.0.0.1", "this machine"),  # octal
    ("0177.0.0.01", "127.0.0.1", "this machine"),
    ("127.1", "127.0.0.1", "this machine"),
    ("[::1]", "::1", "this machine"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1", "this machine (loopback), written as IPv6"),
    ("localhost", "127.0.0.1", "this machine"),
    ("LOCALHOST.", "127.0.0.1", "this machine"),
    ("api.localhost", "127.0.0.1", "this machine"),
    ("１２７。０。０。１", "127.0.0.1", "this machine"),  # full-width digits and dots, as IDNA maps them
    ("127.0.0.1.", "127.0.0.1", "this machine"),
])
def test_loopback_in_every_spelling_is_refused_before_any_connection(receiver, host, shown, reason):
    with context(allow_private=False):
        with pytest.raises(egress.Refused) as refused:
            egress.request("GET", f"http://{host}:{receiver.port}/ok")
        with pytest.raises(egress.Refused):
            egress.check_url(f"http://{host}:{receiver.port}/ok")
    assert shown in str(refused.value) and reason in str(refused.value)
    assert "will not connect" in str(refused.value)
    assert receiver.requests == []  # the server listening there never heard of it


@pytest.mark.parametrize("url, words", [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 points to a link-local address"),
    ("http://10.0.0.5/", "10.0.0.5 points to a private network"),
    ("http://172.16.3.4/", "a private network"),
    ("http://192.168.1.1:8080/", "a private network"),
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://0.0.0.0/", "unspecified address"),
    ("http://0/", "unspecified address"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "reserved"),
    ("http://[::]/", "unspecified address"),
    ("http://[fe80::1]/", "fe80::1 points to a link-local address"),
    ("http://[fe80::1%25eth0]/", "names a network interface"),
    ("http://[fc00::1]/", "fc00::1 points to a private network"),
    ("http://[fd12:3456::1]/", "a private network"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[::ffff:10.0.0.5]/", "a private network, written as IPv6"),
    ("http://[::ffff:169.254.169.254]/", "link-local address (where cloud metadata services live), written as IPv6"),
    ("http://[::127.0.0.1]/", "this machine (loopback), written as IPv6"),  # IPv4-compatible
    ("http://[2002:7f00:1::]/", "written as IPv6"),  # 6to4 around 127.0.0.1
    ("http://[64:ff9b::a00:5]/", "a private network, written as IPv6"),  # NAT64 around 10.0.0.5
    ("https://192.0.2.10/", "a private network"),  # documentation range
])
def test_private_link_local_and_reserved_addresses_are_refused(url, words):
    with context(allow_private=False), pytest.raises(egress.Refused) as refused:
        egress.check_url(url)
    assert words in str(refused.value)


@pytest.mark.parametrize("url, words", [
    ("ftp://example.com/file", "Only http:// and https://"),
    ("file:///etc/passwd", "Only http:// and https://"),
    ("gopher://example.com/", "Only http:// and https://"),
    ("http://user:secret@example.com/", "may not contain a user name or password"),
    ("http://@example.com/", "may not contain a user name or password"),
    ("http://example.com:99999/", "port"),
    ("http://exa mple.com/", "spaces or control characters"),
    ("http://example.com/\r\nX-Injected: 1", "spaces or control characters"),
    ("http:///path", "no host name"),
    ("http://1.2.3.4.5/", "neither a host name nor a valid IP address"),
    ("http://0x1g.1/", "neither a host name nor a valid IP address"),
    ("http://%31%32%37.0.0.1/", "neither a host name nor a valid IP address"),  # never decoded into 127
    ("http://%6c%6fcalhost/", "not a valid host name"),
    ("http://example.com\\@127.0.0.1/", "may not contain a user name or password"),
    ("", "empty"),
])
def test_urls_that_are_not_plain_http_destinations_are_refused(url, words):
    with context(allow_private=True), pytest.raises(egress.Refused) as refused:
        egress.request("GET", url)
    assert words in str(refused.value)


def test_a_name_whose_dns_answers_a_private_address_is_refused(dns_server, receiver):
    dns_server.records[("internal.example.com.", "A")] = ["10.0.0.5"]
    dns_server.records[("sneaky.example.com.", "A")] = ["93.184.216.34"]
    dns_server.records[("sneaky.example.com.", "AAAA")] = ["::1"]  # one bad address among good ones
    dns_server.records[("rebind.example.com.", "A")] = ["127.0.0.1"]
    with context(allow_private=False, nameservers=dns_server.nameserver):
        with pytest.raises(egress.Refused) as refused:
            egress.check_url("https://internal.example.com/hook")
        assert str(refused.value) == ("internal.example.com resolves to a private network (10.0.0.5), "
                                      "which the portal will not connect to.")
        with pytest.raises(egress.Refused) as refused:
            egress.request("POST", "https://sneaky.example.com/hook", body=b"{}")
        assert "sneaky.example.com resolves to this machine (loopback) (::1)" in str(refused.value)
        with pytest.raises(egress.Refused):
            egress.request("GET", f"http://rebind.example.com:{receiver.port}/ok")
    assert receiver.requests == []


def test_a_name_that_does_not_exist_is_a_failure_and_check_url_refuses_it(dns_server):
    with context(allow_private=False, nameservers=dns_server.nameserver):
        with pytest.raises(egress.Failed) as failed:
            egress.request("GET", "https://nowhere.example.com/")
        assert str(failed.value) == "nowhere.example.com could not be found in DNS; check the address."
        with pytest.raises(egress.Refused, match="could not be found in DNS"):
            egress.check_url("https://nowhere.example.com/")


def test_a_redirect_to_a_private_address_is_refused(dns_server, receiver, other_receiver):
    """The first hop is allowed (its exact loopback port is listed, as an operator would list one
    internal system); the redirect to another loopback port, or to the metadata address, is not."""
    dns_server.records[("hooks.example.com.", "A")] = ["127.0.0.1"]
    first = f"http://hooks.example.com:{receiver.port}"
    with context(allow_private=f"127.0.0.1:{receiver.port}", nameservers=dns_server.nameserver):
        assert egress.request("GET", f"{first}/ok").status == 200  # allowed: the listed port
        for target in (f"http://127.0.0.1:{other_receiver.port}/ok", "http://169.254.169.254/latest/meta-data/",
                       f"http://0x7f000001:{other_receiver.port}/ok", f"http://localhost:{other_receiver.port}/"):
            with pytest.raises(egress.Refused) as refused:
                egress.request("GET", f"{first}/redirect?to={target}")
            assert "which the portal will not connect to" in str(refused.value)
        with pytest.raises(egress.Refused):
            egress.check_url(f"http://127.0.0.1:{other_receiver.port}/ok")
    assert other_receiver.requests == []
    assert [r["path"] for r in receiver.requests] == ["/ok"] + ["/redirect"] * 4


# --- Allowed requests --------------------------------------------------------------------------

def test_an_allowed_request_connects_to_the_checked_address_with_the_right_host(dns_server, receiver):
    dns_server.records[("hooks.example.com.", "A")] = ["127.0.0.1"]
    with context(allow_private=True, nameservers=dns_server.nameserver):
        response = egress.request("POST", f"http://hooks.example.com:{receiver.port}/ok?x=1",
                                  headers={"Content-Type": "application/json", "Host": "evil.example",
                                           "webhook-id": "msg_1"}, body=b'{"a": 1}')
    assert response.status == 200 and response.ok
    assert response.json() == {"ok": True} and response.headers["x-receiver"] == "yes"
    assert response.url == f"http://hooks.example.com:{receiver.port}/ok?x=1"
    assert 0 <= response.elapsed_ms < 5000 and response.redirects == []
    seen = receiver.requests[0]
    assert seen["method"] == "POST" and seen["body"] == b'{"a": 1}'
    assert seen["headers"]["Host"] == f"hooks.example.com:{receiver.port}"  # never the caller's Host
    assert seen["headers"]["User-Agent"] == "Portal-Integrations/1.0 (+https://portal.example.com)"
    assert seen["headers"]["webhook-id"] == "msg_1"
    # Resolved once (A and AAAA), then connected to that answer: nothing to rebind.
    assert [q for q in dns_server.queries if q[0] == "hooks.example.com."] == [
        ("hooks.example.com.", "A"), ("hooks.example.com.", "AAAA")]


def test_an_answer_that_changes_after_the_check_is_never_used(dns_server, receiver):
    """DNS rebinding: the first answer is the allowed one, every later answer a private one. The
    request connects to the first (checked) answer and never asks again."""
    answers = iter([["127.0.0.1"]])
    dns_server.records[("rebind.example.com.", "A")] = lambda: next(answers, ["10.0.0.5"])
    with context(allow_private=f"127.0.0.1:{receiver.port}", nameservers=dns_server.nameserver):
        assert egress.request("GET", f"http://rebind.example.com:{receiver.port}/ok").status == 200
        with pytest.raises(egress.Refused, match=r"resolves to a private network \(10.0.0.5\)"):
            egress.request("GET", f"http://rebind.example.com:{receiver.port}/ok")  # a new request asks anew
    assert [q for q in dns_server.queries if q[1] == "A"] == [("rebind.example.com.", "A")] * 2
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "localhost", "2130706433"])
def test_loopback_is_reachable_when_private_destinations_are_allowed(host):
    try:
        receiver = Receiver(address="::1" if host == "[::1]" else "127.0.0.1")
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    try:
        with context(allow_private=True):
            response = egress.request("GET", f"http://{host}:{receiver.port}/ok")
        assert response.status == 200
        expected = "127.0.0.1" if host == "2130706433" else host
        assert receiver.requests[0]["headers"]["Host"] == f"{expected}:{receiver.port}"
    finally:
        receiver.close()


def test_redirects_are_followed_with_browser_semantics(receiver, other_receiver):
    with context(allow_private=True):
        target = f"http://127.0.0.1:{receiver.port}/ok"
        response = egress.request("POST", f"http://127.0.0.1:{receiver.port}/redirect?status=303&to=/ok",
                                  headers={"Authorization": "Bearer t"}, body=b"payload")
        assert response.status == 200 and response.url == target
        assert response.redirects == [f"http://127.0.0.1:{receiver.port}/redirect?status=303&to=/ok"]
        after = receiver.requests[-1]
        assert after["method"] == "GET" and after["body"] == b""
        assert after["headers"]["Authorization"] == "Bearer t"  # same origin: still meant for it

        egress.request("PUT", f"http://127.0.0.1:{receiver.port}/redirect?status=307&to=/ok", body=b"kept")
        assert receiver.requests[-1]["method"] == "PUT" and receiver.requests[-1]["body"] == b"kept"

        # Another origin (another port) does not get the credential headers.
        egress.request("GET", f"http://127.0.0.1:{receiver.port}/redirect?to=http://127.0.0.1:{other_receiver.port}/ok",
                       headers={"Authorization": "Bearer t", "Cookie": "a=b", "X-Kept": "1"})
        moved = other_receiver.requests[-1]["headers"]
        assert "Authorization" not in moved and "Cookie" not in moved and moved["X-Kept"] == "1"

        with pytest.raises(egress.Failed) as failed:
            egress.request("GET", f"http://127.0.0.1:{receiver.port}/loop", max_redirects=2)
        assert str(failed.value) == "127.0.0.1 redirected more than 2 times; the request was given up."
        with pytest.raises(egress.Failed, match="redirected more than 0 times"):
            egress.request("GET", f"http://127.0.0.1:{receiver.port}/loop", max_redirects=0)


# --- Limits --------------------------------------------------------------------------------------

def test_a_response_over_the_size_limit_is_a_failure(receiver):
    with context(allow_private=True):
        assert len(egress.request("GET", f"http://127.0.0.1:{receiver.port}/big?n=1000", max_bytes=1000).body) == 1000
        with pytest.raises(egress.Failed) as failed:
            egress.request("GET", f"http://127.0.0.1:{receiver.port}/big?n=1001", max_bytes=1000)
        assert str(failed.value) == "The answer from 127.0.0.1 was larger than 1,000 bytes, the limit; it was not kept."
        started = time.monotonic()
        with pytest.raises(egress.Failed, match="larger than 50,000 bytes"):
            egress.request("GET", f"http://127.0.0.1:{receiver.port}/big-unannounced?n=5000000", max_bytes=50_000)
        assert time.monotonic() - started < 2  # stopped while streaming, not after 5 MB


def test_timeouts_bound_the_whole_request(receiver):
    with context(allow_private=True):
        started = time.monotonic()
        with pytest.raises(egress.Failed) as failed:
            egress.request("GET", f"http://127.0.0.1:{receiver.port}/slow?s=6", timeout=0.3)
        assert str(failed.value) == "127.0.0.1 did not answer within 0.3 seconds."
        assert time.monotonic() - started < 3  # not the 6 s the server takes (generous: CI is busy)
        # A body trickling in a byte at a time: each read is quick, the total is still bounded.
        for query in ("length=1", ""):
            started = time.monotonic()
            with pytest.raises(egress.Failed, match="did not answer within 0.5 seconds"):
                egress.request("GET", f"http://127.0.0.1:{receiver.port}/trickle?{query}", timeout=0.5)
            assert time.monotonic() - started < 3  # the trickle would take 5,000 s


def test_a_closed_port_is_a_failure_with_a_sentence():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with context(allow_private=True), pytest.raises(egress.Failed) as failed:
        egress.request("GET", f"http://127.0.0.1:{port}/")
    assert str(failed.value) == f"127.0.0.1 refused the connection (nothing listens on port {port})."


def test_bad_headers_and_methods_are_refused(receiver):
    with context(allow_private=True):
        with pytest.raises(egress.Refused, match="not a valid HTTP header"):
            egress.request("GET", f"http://127.0.0.1:{receiver.port}/ok", headers={"X-A": "1\r\nX-B: 2"})
        with pytest.raises(egress.Refused, match="not an HTTP method"):
            egress.request("GET /x HTTP/1.1\r\n", f"http://127.0.0.1:{receiver.port}/ok")
    assert receiver.requests == []


# --- TLS: SNI and the certificate are checked against the name, not the address -------------------

def _certificates(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Egress test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.example.com")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.example.com")]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_file, cert_file, key_file


def test_tls_uses_the_name_for_sni_and_the_certificate(tmp_path, monkeypatch, dns_server):
    ca_file, cert_file, key_file = _certificates(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    receiver = Receiver(tls_context=server_context)
    # OpenSSL's default trust store honours SSL_CERT_FILE: the test CA stands in for a public one.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    dns_server.records[("hooks.example.com.", "A")] = ["127.0.0.1"]
    dns_server.records[("other.example.com.", "A")] = ["127.0.0.1"]
    try:
        with context(allow_private=True, nameservers=dns_server.nameserver):
            response = egress.request("GET", f"https://hooks.example.com:{receiver.port}/ok")
            assert response.status == 200
            assert receiver.sni[-1] == "hooks.example.com"
            assert receiver.requests[-1]["headers"]["Host"] == f"hooks.example.com:{receiver.port}"
            # Same address, another name: the certificate does not match it.
            with pytest.raises(egress.Failed) as failed:
                egress.request("GET", f"https://other.example.com:{receiver.port}/ok")
            assert str(failed.value).startswith("The TLS certificate of other.example.com could not be verified")
            with pytest.raises(egress.Failed, match="TLS certificate of 127.0.0.1 could not be verified"):
                egress.request("GET", f"https://127.0.0.1:{receiver.port}/ok")
        monkeypatch.delenv("SSL_CERT_FILE")
        monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "none"))
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
        with context(allow_private=True, nameservers=dns_server.nameserver):
            with pytest.raises(egress.Failed, match="could not be verified"):
                egress.request("GET", f"https://hooks.example.com:{receiver.port}/ok")
        assert len(receiver.requests) == 1
    finally:
        receiver.close()


# --- Configuration -------------------------------------------------------------------------------

def _production(**overrides):
    from conftest import TEST_MASTER_KEY
    return config_module.load({"PORTAL_ENV": "production", "SECRET_KEY": "k" * 40, "DATABASE_URL": "postgresql://x/y",
                               "BASE_URL": "https://portal.example.com", "PORTAL_MASTER_KEYS": TEST_MASTER_KEY,
                               **overrides})


def test_configuration_of_private_destinations(monkeypatch):
    monkeypatch.delenv("INTEGRATIONS_ALLOW_PRIVATE", raising=False)
    assert config_module.load({"PORTAL_ENV": "testing"})["INTEGRATIONS_ALLOW_PRIVATE"] is True
    assert _production()["INTEGRATIONS_ALLOW_PRIVATE"] is False
    with pytest.raises(config_module.ConfigError, match="refused in production"):
        _production(INTEGRATIONS_ALLOW_PRIVATE="1")
    listed = _production(INTEGRATIONS_ALLOW_PRIVATE="10.1.2.3:8443, 10.8.0.0/16, [::1]:9000")["INTEGRATIONS_ALLOW_PRIVATE"]
    assert [(str(net), port) for net, port in listed] == [("10.1.2.3/32", 8443), ("10.8.0.0/16", None), ("::1/128", 9000)]
    with pytest.raises(config_module.ConfigError, match="'intranet' is not an address"):
        _production(INTEGRATIONS_ALLOW_PRIVATE="intranet")
    monkeypatch.setenv("INTEGRATIONS_ALLOW_PRIVATE", "0")
    assert config_module.load({"PORTAL_ENV": "testing"})["INTEGRATIONS_ALLOW_PRIVATE"] is False
    with pytest.raises(config_module.ConfigError, match="must be an IP address"):
        _production(DNS_NAMESERVERS="dns.example.com")
    assert _production(DNS_NAMESERVERS="10.0.0.2, 127.0.0.1:5353")["DNS_NAMESERVERS"] == "10.0.0.2, 127.0.0.1:5353"


def test_a_listed_network_allows_only_itself():
    with context(allow_private="10.8.0.0/16"):
        egress.check_url("http://10.8.1.2/")  # listed
        with pytest.raises(egress.Refused):
            egress.check_url("http://10.9.0.1/")
        with pytest.raises(egress.Refused):
            egress.check_url("http://127.0.0.1/")


def test_host_names_in_other_scripts_and_with_underscores(dns_server, receiver):
    dns_server.records[("xn--bcher-kva.example.com.", "A")] = ["127.0.0.1"]
    dns_server.records[("a_b.example.com.", "A")] = ["127.0.0.1"]
    with context(allow_private=True, nameservers=dns_server.nameserver):
        egress.request("GET", f"http://Bücher.example.com:{receiver.port}/ok")
        egress.request("HEAD", f"http://a_b.example.com:{receiver.port}/big?n=5000", max_bytes=10)  # HEAD: no body
    assert [r["headers"]["Host"] for r in receiver.requests] == [
        f"xn--bcher-kva.example.com:{receiver.port}", f"a_b.example.com:{receiver.port}"]
    with context(allow_private=True), pytest.raises(egress.Refused, match="not a valid host name"):
        egress.check_url("http://bad..example.com/")


def test_the_portal_app_reads_both_settings(app, receiver, dns_server):
    """The real app (tests/conftest.py): private destinations allowed in testing, so the other
    areas' loopback receivers work; DNS_NAMESERVERS set per app."""
    assert app.config["INTEGRATIONS_ALLOW_PRIVATE"] is True
    dns_server.records[("receiver.example.com.", "A")] = ["127.0.0.1"]
    saved = app.config["DNS_NAMESERVERS"]
    app.config["DNS_NAMESERVERS"] = dns_server.nameserver
    try:
        with app.app_context():
            response = egress.request("GET", f"http://receiver.example.com:{receiver.port}/ok")
    finally:
        app.config["DNS_NAMESERVERS"] = saved
    assert response.status == 200
    assert receiver.requests[0]["headers"]["User-Agent"] == f"Portal-Integrations/1.0 (+{app.config['BASE_URL']})"
