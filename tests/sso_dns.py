"""A DNS server on loopback (dnslib) for the verified-domain tests: `.records` {(name., type): [values]}.
Branch egress brings tests/dns_support.py with the same shape; this file goes when it lands."""
from __future__ import annotations

import pytest
from dnslib import QTYPE, RR, TXT
from dnslib.server import BaseResolver, DNSServer


class _Resolver(BaseResolver):
    def __init__(self, records):
        self.records = records

    def resolve(self, request, handler):
        reply = request.reply()
        name, qtype = str(request.q.qname), QTYPE[request.q.qtype]
        values = self.records.get((name, qtype))
        if values is None and not any(n == name for n, _ in self.records):
            reply.header.rcode = 3  # NXDOMAIN
        for value in values or []:
            if qtype == "TXT":
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(value), ttl=1))
        return reply


class Server:
    def __init__(self):
        self.records: dict[tuple[str, str], list[str]] = {}
        self._server = DNSServer(_Resolver(self.records), port=0, address="127.0.0.1")
        self._server.start_thread()
        self.port = self._server.server.server_address[1]
        self.nameserver = f"127.0.0.1:{self.port}"

    def stop(self):
        self._server.stop()


@pytest.fixture(scope="module")
def dns_server():
    server = Server()
    yield server
    server.stop()
