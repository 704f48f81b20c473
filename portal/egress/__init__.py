"""Outbound HTTP for integrations, webhooks and identity providers, safe against SSRF: only http(s),
no credentials in URLs, private/loopback/link-local/reserved destinations refused unless
INTEGRATIONS_ALLOW_PRIVATE lets them through, the checked address used for the connection (no DNS
rebinding), every redirect checked again, a total timeout and a response size limit.

    from portal import egress
    response = egress.request("POST", url, headers={...}, body=payload)   # egress.Response
    egress.check_url(form.url.data)                                      # raises egress.Refused
    session.mount("https://", egress.EgressAdapter())                    # a library's requests.Session

See docs/security.md, "Outbound requests (SSRF)".
"""
from __future__ import annotations

from .adapter import EgressAdapter
from .client import USER_AGENT, Response, check_url, request
from .errors import EgressError, Failed, Refused

__all__ = ["EgressAdapter", "EgressError", "Failed", "Refused", "Response", "USER_AGENT", "check_url", "request"]
