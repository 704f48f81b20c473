"""The two ways an outbound request does not happen; str() of each is a sentence for a person."""
from __future__ import annotations


class EgressError(Exception):
    """An outbound request that did not give an answer."""


class Refused(EgressError):
    """The destination is not allowed (a private network, a URL with credentials, a scheme other
    than http/https). Retrying will not help; the address must change."""


class Failed(EgressError):
    """The destination is allowed but the request did not complete: DNS, connection, TLS, timeout,
    a response over the size limit, too many redirects. It may work later."""
