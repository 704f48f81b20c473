"""A real DNS server on loopback for tests (dnslib), answering from a dict the test fills:

    def test_x(dns_server, app):
        dns_server.records[("hooks.example.com.", "A")] = ["127.0.0.1"]
        dns_server.records[("_portal.example.com.", "TXT")] = ["portal-verification=abc"]
        app.config["DNS_NAMESERVERS"] = dns_server.nameserver   # "127.0.0.1:PORT"

A name that appears under no type is NXDOMAIN; a name with records of other types only answers
NOERROR with nothing (no such record). A value may be a function returning the list, asked at
every query (a name whose answer changes: DNS rebinding). `dns_server.broken[name] = "timeout"` sends no answer at all,
`"servfail"` answers SERVFAIL. Names are lower-case and end with a dot.
"""
from __future__ import annotations

import threading

import pytest
from dnslib import QTYPE, RCODE, RR, TXT, A, AAAA
from dnslib.server import DNSServer

_RDATA = {"A": A, "AAAA": AAAA}


class _Quiet:
    """dnslib logs every packet to stdout by default."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class _NoAnswer(Exception):
    pass


class _Resolver:
    def __init__(self, records: dict, broken: dict, queries: list):
        self.records, self.broken, self.queries = records, broken, queries

    def resolve(self, request, handler):
        qname = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        self.queries.append((qname, qtype))
        reply = request.reply()
        failure = self.broken.get(qname)
        if failure == "timeout":
            raise _NoAnswer(qname)  # the handler below drops the request: the client times out
        if failure == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if not any(name == qname for name, _type in self.records):
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        values = self.records.get((qname, qtype), [])
        for value in values() if callable(values) else values:
            if qtype == "TXT":
                # Long values are split into 255-byte strings, as a zone file would hold them.
                data = value.encode()
                rdata = TXT([data[i:i + 255] for i in range(0, len(data), 255)] or [b""])
            else:
                rdata = _RDATA[qtype](value)
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=60))
        return reply


class DNSTestServer:
    def __init__(self):
        self.records: dict[tuple[str, str], list[str]] = {}
        self.broken: dict[str, str] = {}
        self.queries: list[tuple[str, str]] = []
        self._server = DNSServer(_Resolver(self.records, self.broken, self.queries), address="127.0.0.1",
                                 port=0, logger=_Quiet())
        self._server.server.handle_error = lambda request, address: None  # a dropped request is no error
        self.port = self._server.server.server_address[1]
        self.nameserver = f"127.0.0.1:{self.port}"

    def start(self):
        # A short poll interval: shutdown() waits for it, and every test that uses DNS stops a server.
        self._thread = threading.Thread(target=self._server.server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()

    def stop(self):
        self._server.server.shutdown()
        self._server.server.server_close()


@pytest.fixture
def dns_server():
    server = DNSTestServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
