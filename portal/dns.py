"""DNS look-ups for the portal: the addresses outbound requests connect to (portal.egress) and the
TXT records that prove a domain (SSO domain verification).

`DNS_NAMESERVERS` (comma-separated `host` or `host:port`, IPv6 as `[::1]:5353`) names the servers to
ask; empty means the machine's own resolver. Tests point it at a dnslib server on loopback
(tests/dns_support.py). Errors are sentences a person can read: `NotFound` when the name or the record
does not exist (an answer), `LookupFailed` when no answer came (a timeout, a failing server: try again
later). Both are `DNSError`.

Imported as `from portal import dns as dns_lookup` next to dnspython's own `dns` package.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import threading

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

DEFAULT_TIMEOUT = 5.0
# RFC 6761: these names are this machine's, whatever a DNS server might answer for them.
LOOPBACK_NAMES = ("localhost",)


class DNSError(Exception):
    """A look-up did not give what was asked; str() is a sentence for a person."""


class NotFound(DNSError):
    """An answer that says no: the name does not exist (kind "nxdomain"), or it has no record of the
    asked type (kind "no_records")."""

    def __init__(self, message: str, *, kind: str):
        super().__init__(message)
        self.kind = kind


class LookupFailed(DNSError):
    """No usable answer: a timeout, a failing server, no resolver configured. Worth trying again."""


def parse_nameservers(value) -> list[tuple[str, int]]:
    """`"10.0.0.2, 127.0.0.1:5353, [::1]:53, ::1"` -> [(ip, port), ...]. Raises ValueError with a
    sentence naming the bad entry (config.load turns it into a ConfigError)."""
    if not value:
        return []
    entries = value.split(",") if isinstance(value, str) else list(value)
    servers = []
    for raw in entries:
        if isinstance(raw, tuple):  # already parsed
            servers.append(raw)
            continue
        entry = str(raw).strip()
        if not entry:
            continue
        host, port = entry, 53
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            if rest:
                if not rest.startswith(":") or not rest[1:].isdigit():
                    raise ValueError(f"DNS_NAMESERVERS entry {entry!r} is not host or host:port.")
                port = int(rest[1:])
        elif entry.count(":") == 1:
            host, _, port_text = entry.partition(":")
            if not port_text.isdigit():
                raise ValueError(f"DNS_NAMESERVERS entry {entry!r} has a port that is not a number.")
            port = int(port_text)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"DNS_NAMESERVERS entry {entry!r} must be an IP address (with an optional :port), "
                             "not a name: the name would need a resolver of its own.") from None
        if not 0 < port < 65536:
            raise ValueError(f"DNS_NAMESERVERS entry {entry!r} has a port outside 1-65535.")
        servers.append((host, port))
    return servers


def configured_nameservers() -> list[tuple[str, int]]:
    """DNS_NAMESERVERS of the running app, or of the environment outside one (a script)."""
    try:
        from flask import current_app, has_app_context
        if has_app_context():
            return parse_nameservers(current_app.config.get("DNS_NAMESERVERS"))
    except ImportError:  # pragma: no cover - Flask is always installed with the portal
        pass
    return parse_nameservers(os.environ.get("DNS_NAMESERVERS"))


def resolver(*, timeout: float = DEFAULT_TIMEOUT, nameservers=None) -> dns.resolver.Resolver:
    """A dnspython Resolver asking DNS_NAMESERVERS (or `nameservers`), else the machine's
    /etc/resolv.conf servers. No cache: a verification must see the record as it is now."""
    servers = parse_nameservers(nameservers) if nameservers is not None else configured_nameservers()
    if servers:
        result = dns.resolver.Resolver(configure=False)
        result.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
    else:
        try:
            result = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            raise LookupFailed("This server has no DNS resolver configured (no /etc/resolv.conf and no "
                               "DNS_NAMESERVERS).") from None
    result.cache = None
    result.timeout = timeout  # per server tried
    result.lifetime = timeout  # the whole look-up
    return result


def _absolute(name: str) -> dns.name.Name:
    try:
        return dns.name.from_text(name.rstrip(".") + ".")
    except (dns.exception.DNSException, UnicodeError, ValueError):
        raise NotFound(f"{name} is not a valid domain name.", kind="nxdomain") from None


def _query(name: str, rdtype: str, *, timeout: float, nameservers=None):
    """One question to the resolver; dnspython's outcomes turned into sentences."""
    shown = name.rstrip(".")
    qname = _absolute(name)
    try:
        return resolver(timeout=timeout, nameservers=nameservers).resolve(qname, rdtype, search=False,
                                                                           raise_on_no_answer=True)
    except dns.resolver.NXDOMAIN:
        raise NotFound(f"{shown} does not exist in DNS.", kind="nxdomain") from None
    except dns.resolver.NoAnswer:
        raise NotFound(f"{shown} exists in DNS but has no {rdtype} record.", kind="no_records") from None
    except dns.resolver.LifetimeTimeout:
        raise LookupFailed(f"DNS did not answer for {shown} within {timeout:g} seconds; "
                           "try again later.") from None
    except dns.resolver.NoNameservers:
        raise LookupFailed(f"The DNS servers could not answer for {shown} (they reported a failure); "
                           "try again later.") from None
    except dns.exception.DNSException as error:
        raise LookupFailed(f"The DNS look-up of {shown} failed ({error.__class__.__name__}); "
                           "try again later.") from None


def txt_records(name: str, *, timeout: float = DEFAULT_TIMEOUT, nameservers=None) -> list[str]:
    """The TXT records at `name`, each one's strings joined (as RFC 7208 reads long records).
    NotFound(kind="nxdomain") when the name does not exist, NotFound(kind="no_records") when it has
    no TXT record, LookupFailed when DNS did not answer."""
    answer = _query(name, "TXT", timeout=timeout, nameservers=nameservers)
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]


def is_loopback_name(host: str) -> bool:
    host = host.rstrip(".").lower()
    return any(host == name or host.endswith("." + name) for name in LOOPBACK_NAMES)


def addresses(host: str, *, timeout: float = DEFAULT_TIMEOUT, nameservers=None) -> list[str]:
    """The IP addresses of `host`, IPv4 first when asked through DNS_NAMESERVERS, else in the
    order the system resolver gives (it honours /etc/hosts). `localhost` names are loopback
    without asking anyone (RFC 6761)."""
    if is_loopback_name(host):
        return ["127.0.0.1", "::1"]
    servers = parse_nameservers(nameservers) if nameservers is not None else configured_nameservers()
    if servers:
        return _dns_addresses(host, timeout=timeout, nameservers=servers)
    return _system_addresses(host, timeout=timeout)


def _dns_addresses(host: str, *, timeout: float, nameservers) -> list[str]:
    found: list[str] = []
    failure: DNSError | None = None
    for rdtype in ("A", "AAAA"):
        try:
            found += [rdata.address for rdata in _query(host, rdtype, timeout=timeout, nameservers=nameservers)]
        except NotFound as error:
            if error.kind == "nxdomain":
                raise
            failure = failure or error
        except LookupFailed as error:
            failure = error
    if found:
        return found
    if isinstance(failure, LookupFailed):
        raise failure
    raise NotFound(f"{host} has no address in DNS.", kind="no_records")


def _system_addresses(host: str, *, timeout: float) -> list[str]:
    """getaddrinfo in a daemon thread: it has no timeout of its own, and a stuck look-up must not
    hold a request (or the process's exit) longer than `timeout`."""
    outcome: dict = {}

    def look_up():
        try:
            outcome["infos"] = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            outcome["error"] = error

    thread = threading.Thread(target=look_up, name="dns-lookup", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise LookupFailed(f"DNS did not answer for {host} within {timeout:g} seconds; try again later.")
    error = outcome.get("error")
    if isinstance(error, socket.gaierror) and error.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
        raise NotFound(f"{host} does not exist in DNS.", kind="nxdomain")
    if error is not None:
        raise LookupFailed(f"The DNS look-up of {host} failed ({error}); try again later.")
    result: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in outcome["infos"]:
        address = sockaddr[0]  # a scoped IPv6 address keeps its %zone: the egress check refuses it
        if address not in result:
            result.append(address)
    return result
