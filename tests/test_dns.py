"""portal.dns against a real DNS server on loopback (tests/dns_support.py): what a domain owner's
records look like to the portal, and the sentences a person reads when they are not there."""
from __future__ import annotations

import time

import pytest
from flask import Flask

from portal import dns as dns_lookup


def context(nameservers):
    app = Flask("dns-test")
    app.config["DNS_NAMESERVERS"] = nameservers
    return app.app_context()


def test_addresses_come_from_the_configured_nameserver(dns_server):
    dns_server.records[("hooks.example.com.", "A")] = ["203.0.113.7", "203.0.113.8"]
    dns_server.records[("hooks.example.com.", "AAAA")] = ["2001:db8::7"]
    dns_server.records[("v4only.example.com.", "A")] = ["203.0.113.9"]
    with context(dns_server.nameserver):
        assert dns_lookup.addresses("hooks.example.com") == ["203.0.113.7", "203.0.113.8", "2001:db8::7"]
        assert dns_lookup.addresses("V4ONLY.example.com.") == ["203.0.113.9"]
        assert dns_lookup.addresses("localhost") == ["127.0.0.1", "::1"]  # never asked (RFC 6761)
        with pytest.raises(dns_lookup.NotFound) as missing:
            dns_lookup.addresses("nowhere.example.com")
    assert str(missing.value) == "nowhere.example.com does not exist in DNS." and missing.value.kind == "nxdomain"
    assert ("localhost.", "A") not in dns_server.queries


def test_the_nameserver_can_be_given_directly_and_as_host_port_forms(dns_server):
    dns_server.records[("a.example.com.", "A")] = ["203.0.113.1"]
    assert dns_lookup.addresses("a.example.com", nameservers=dns_server.nameserver) == ["203.0.113.1"]
    assert dns_lookup.parse_nameservers("10.0.0.2, 127.0.0.1:5353,[::1]:53, ::1") == [
        ("10.0.0.2", 53), ("127.0.0.1", 5353), ("::1", 53), ("::1", 53)]
    for bad in ("dns.example.com", "10.0.0.2:dns", "10.0.0.2:70000", "[::1]x"):
        with pytest.raises(ValueError, match="DNS_NAMESERVERS entry"):
            dns_lookup.parse_nameservers(bad)


def test_txt_records_and_the_three_ways_they_are_missing(dns_server):
    name = "_portal-verification.example.com."
    long_value = "portal-verification=" + "a" * 300  # longer than one TXT string (255 bytes)
    dns_server.records[(name, "TXT")] = ["v=spf1 -all", long_value]
    dns_server.records[("example.com.", "A")] = ["203.0.113.5"]
    dns_server.broken["slow.example.com."] = "timeout"
    dns_server.broken["broken.example.com."] = "servfail"
    with context(dns_server.nameserver):
        assert dns_lookup.txt_records("_portal-verification.example.com") == ["v=spf1 -all", long_value]

        with pytest.raises(dns_lookup.NotFound) as nxdomain:
            dns_lookup.txt_records("_portal-verification.other.example")
        assert str(nxdomain.value) == "_portal-verification.other.example does not exist in DNS."
        assert nxdomain.value.kind == "nxdomain"

        with pytest.raises(dns_lookup.NotFound) as no_txt:
            dns_lookup.txt_records("example.com")
        assert str(no_txt.value) == "example.com exists in DNS but has no TXT record."
        assert no_txt.value.kind == "no_records"

        started = time.monotonic()
        with pytest.raises(dns_lookup.LookupFailed) as timeout:
            dns_lookup.txt_records("slow.example.com", timeout=0.3)
        assert str(timeout.value) == "DNS did not answer for slow.example.com within 0.3 seconds; try again later."
        assert time.monotonic() - started < 1.5

        with pytest.raises(dns_lookup.LookupFailed) as servfail:
            dns_lookup.txt_records("broken.example.com")
        assert "could not answer for broken.example.com" in str(servfail.value)
    assert all(isinstance(error, dns_lookup.DNSError) for error in (nxdomain.value, timeout.value))


def test_without_configured_nameservers_the_system_resolver_answers_for_localhost():
    """The machine's resolver (getaddrinfo, /etc/hosts included) when DNS_NAMESERVERS is empty."""
    with context(""):
        assert dns_lookup.configured_nameservers() == []
        assert "127.0.0.1" in dns_lookup._system_addresses("localhost", timeout=2)
        assert dns_lookup._system_addresses("127.0.0.1", timeout=2) == ["127.0.0.1"]
