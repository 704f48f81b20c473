"""Who the portal is to a passkey: the relying party id (a domain name) and the origins
whose ceremonies it accepts.

- `WEBAUTHN_RP_ID`: unset, the host name of `BASE_URL`. A loopback address there (the
  development default, http://127.0.0.1:5000) becomes `localhost`: browsers refuse an IP
  address as a relying party id, so passkeys work at http://localhost:5000. Any other IP
  address gives no relying party: passkeys are then unavailable, and the pages say so.
- `WEBAUTHN_ORIGINS` (comma-separated): unset, the origin of `BASE_URL`; outside production
  also the origin a request came to when its host is the relying party id (the tests' live
  server and `make run` listen on a port chosen at start). Production accepts only the
  configured origins: the Host header is the client's to choose.
"""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from flask import current_app, has_request_context, request

RP_NAME = "Portal"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def rp_id() -> str | None:
    """The relying party id, or None when the portal is reached only by an IP address."""
    configured = (current_app.config.get("WEBAUTHN_RP_ID") or "").strip().lower()
    if configured:
        return None if _is_ip(configured) else configured
    host = (urlsplit(current_app.config["BASE_URL"]).hostname or "").lower()
    if not host:
        return None
    if _is_ip(host):
        return "localhost" if ipaddress.ip_address(host.strip("[]")).is_loopback else None
    return host


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origins() -> list[str]:
    """The origins a ceremony's clientDataJSON may name."""
    configured = [o.strip().rstrip("/").lower() for o in
                  (current_app.config.get("WEBAUTHN_ORIGINS") or "").split(",") if o.strip()]
    if configured:
        return configured
    found = [_origin(current_app.config["BASE_URL"])]
    rp = rp_id()
    if current_app.config["PORTAL_ENV"] != "production" and rp and has_request_context():
        host = (urlsplit(request.host_url).hostname or "").lower()
        if host == rp or host.endswith("." + rp):
            found.append(_origin(request.host_url))
    return list(dict.fromkeys(found))
