"""Networks a tenant's members may come from (its IP allow list), IPv4 and IPv6 in CIDR form.
The client's address is `request.remote_addr`: behind proxies, TRUSTED_PROXIES makes it the
address the nearest trusted proxy saw (werkzeug's ProxyFix, set up in the app factory)."""
from __future__ import annotations

import ipaddress

from ..rules import RuleViolation

MAX_NETWORKS = 50


def parse_networks(entries) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for raw in entries or []:
        text = str(raw).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise RuleViolation(f"{text[:60]} is not a network: write an address (203.0.113.7) or a range in CIDR "
                                "form (203.0.113.0/24, 2001:db8::/48).", field="ip_allowlist") from None
    if len(networks) > MAX_NETWORKS:
        raise RuleViolation(f"List at most {MAX_NETWORKS} networks.", field="ip_allowlist")
    return networks


def allowed(address: str | None, entries) -> bool:
    """Whether `address` is in one of the networks (an empty list allows every address)."""
    if not entries:
        return True
    try:
        here = ipaddress.ip_address(address or "")
        return any(here in n for n in parse_networks(entries))
    except (ValueError, RuleViolation):
        return False  # an unreadable address or list lets nobody in rather than everybody
