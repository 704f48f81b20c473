"""Where outbound requests may go: a URL is parsed the way a browser would read its host (numeric
IPv4 forms included), resolved once, and every address checked. Nothing here connects anywhere."""
from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

from .. import dns as dns_lookup
from ..config import allow_private_setting
from .errors import Failed, Refused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = {"http": 80, "https": 443}
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# A host whose last label looks like a number is an IPv4 address to a browser (WHATWG URL), never a name.
_NUMBER = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class Destination:
    """A checked place to connect to: the name for Host, SNI and the certificate; the addresses
    (already checked) for the socket."""
    scheme: str
    host: str  # ASCII (IDNA) host name or the IP address as text
    port: int
    target: str  # path and query sent in the request line
    addresses: tuple[str, ...]
    is_literal: bool  # the URL named an address, not a name

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.target}"


def _ipv4_number(host: str) -> ipaddress.IPv4Address | None:
    """WHATWG's IPv4 parser: `2130706433`, `0x7f.1`, `017700000001`, `127.1` are all 127.0.0.1 to a
    browser and to inet_aton. None when the host is a name; Refused when it is a broken number."""
    labels = host.split(".")
    if labels and labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]
    if not labels or not _NUMBER.match(labels[-1]):
        return None
    if len(labels) > 4 or not all(_NUMBER.match(label) for label in labels):
        raise Refused(f"{host} is neither a host name nor a valid IP address.")
    numbers = []
    for label in labels:
        if label.startswith("0x"):
            numbers.append(int(label[2:] or "0", 16))
        elif len(label) > 1 and label.startswith("0"):
            if not set(label) <= set("01234567"):
                raise Refused(f"{host} is neither a host name nor a valid IP address.")
            numbers.append(int(label, 8))
        else:
            numbers.append(int(label))
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise Refused(f"{host} is neither a host name nor a valid IP address.")
    value = last
    for index, n in enumerate(head):
        value += n << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d),
    6to4 (2002::/16), Teredo's client, NAT64 (64:ff9b::/96). Each reaches that IPv4 host."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # ::a.b.c.d (deprecated "IPv4-compatible")
        return ipaddress.IPv4Address(int(ip))
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why the portal does not connect to `ip` by default, as words ("a private network"); None
    for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a link-local address"
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = forbidden_reason(inner)
            return f"{reason}, written as IPv6" if reason else None
    if ip.is_unspecified:
        return "the unspecified address (this machine)"
    if ip.is_loopback:
        return "this machine (loopback)"
    if ip.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if ip in CGNAT:
        return "the carrier-grade NAT range (100.64.0.0/10)"
    if ip.is_multicast:
        return "a multicast group"
    if ip.is_reserved:  # before is_private, which also covers 240.0.0.0/4
        return "a reserved address range"
    if ip.is_private:
        return "a private network"
    if not ip.is_global:
        return "an address range that is not on the public internet"
    return None


def _policy(value) -> bool | tuple:
    return allow_private_setting(value, default=False)


def _allowed_by_list(ip: IPAddress, port: int, allowed: tuple) -> bool:
    return any(ip.version == network.version and ip in network and (only is None or only == port)
               for network, only in allowed)


def check_address(ip: IPAddress, *, host: str, port: int, allow_private, is_literal: bool) -> None:
    """Refused unless `ip` is public or INTEGRATIONS_ALLOW_PRIVATE lets it through."""
    reason = forbidden_reason(ip)
    policy = _policy(allow_private)
    if reason is None or policy is True:
        return
    if policy and _allowed_by_list(ip, port, policy):
        return
    shown = str(ip)
    if is_literal:
        raise Refused(f"The address {shown} points to {reason}, which the portal will not connect to.")
    raise Refused(f"{host} resolves to {reason} ({shown}), which the portal will not connect to.")


_ASCII_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def _host_name(host: str) -> str:
    """The ASCII form of a host name: international names through IDNA 2008 (UTS 46, as browsers),
    ASCII names as they are (underscores included, which IDNA would refuse but DNS serves)."""
    name = host.rstrip(".").lower()
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            raise Refused(f"{host} is not a valid host name.") from None
    if not name or len(name) > 253 or not all(_ASCII_LABEL.match(label) for label in name.split(".")):
        raise Refused(f"{host} is not a valid host name.")
    return name


def parse(url: str) -> tuple[str, str, int, str, IPAddress | None]:
    """(scheme, host, port, target, literal address or None). Refused for anything an integration
    has no business sending: other schemes, credentials in the URL, spaces, bad ports."""
    if not isinstance(url, str) or not url:
        raise Refused("The address is empty.")
    if _CONTROL.search(url):
        raise Refused("The address may not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("The address is not a valid URL (check the host and the port).") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise Refused("Only http:// and https:// addresses are allowed.")
    if "@" in parts.netloc:
        raise Refused("The address may not contain a user name or password; "
                      "put credentials in the integration's credential fields instead.")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise Refused("The address has no host name.")
    if port == 0:
        raise Refused("The port in the address is not valid.")
    port = port or SCHEMES[scheme]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.netloc.rsplit("@", 1)[-1].startswith("["):
        if "%" in raw_host:
            raise Refused(f"The address {raw_host} names a network interface (a link-local address), "
                          "which the portal will not connect to.")
        try:
            literal = ipaddress.IPv6Address(raw_host)
        except ValueError:
            raise Refused(f"{raw_host} is not a valid IPv6 address.") from None
        return scheme, str(literal), port, target, literal
    literal = _ipv4_number(raw_host.lower())
    if literal is not None:
        return scheme, str(literal), port, target, literal
    return scheme, _host_name(raw_host), port, target, None


def resolve(url: str, *, allow_private, deadline: float, lookup_timeout: float | None = None) -> Destination:
    """Parse, resolve once and check `url`. Refused for a destination the portal does not reach;
    Failed when the name cannot be looked up (it may work later)."""
    scheme, host, port, target, literal = parse(url)
    if literal is not None:
        check_address(literal, host=host, port=port, allow_private=allow_private, is_literal=True)
        return Destination(scheme, host, port, target, (host,), True)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise Failed(f"There was no time left to look up {host}.")
    timeout = min(remaining, lookup_timeout or remaining)
    try:
        found = dns_lookup.addresses(host, timeout=timeout)
    except dns_lookup.NotFound:
        raise Failed(f"{host} could not be found in DNS; check the address.") from None
    except dns_lookup.LookupFailed as error:
        raise Failed(str(error)) from None
    checked = []
    for text in found:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:  # a scoped IPv6 address from the system resolver: link-local
            raise Refused(f"{host} resolves to a link-local address ({text}), which the portal will not "
                          "connect to.") from None
        # Every address is checked, not only the first: the connection may fall back to any of them.
        check_address(ip, host=host, port=port, allow_private=allow_private, is_literal=False)
        checked.append(str(ip))
    if not checked:
        raise Failed(f"{host} has no address in DNS.")
    return Destination(scheme, host, port, target, tuple(checked), False)
