"""One outbound HTTP request, made safely: the host is resolved once (portal.dns), every address is
checked (destinations.py), and the socket connects to a checked address while the Host header, TLS
server name (SNI) and certificate check use the host name. No second resolution happens, so a DNS
answer that changes between the check and the connection (rebinding) changes nothing.

urllib3 does the HTTP: its pools take the address as `host` and the name as `server_hostname` and
`assert_hostname`. It never reads HTTP(S)_PROXY, so nothing re-resolves the name behind our back.
"""
from __future__ import annotations

import json as jsonlib
import logging
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from urllib3 import HTTPHeaderDict, Timeout
from urllib3 import exceptions as u3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from . import destinations
from .errors import EgressError, Failed, Refused

log = logging.getLogger("portal.egress")
USER_AGENT = "Portal-Integrations/1.0"
REDIRECTS = {301, 302, 303, 307, 308}
CHUNK = 64 * 1024
# Headers that carry a credential: dropped when a redirect leaves the origin they were meant for.
CREDENTIAL_HEADERS = {"authorization", "cookie", "proxy-authorization"}
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass(frozen=True)
class Response:
    """What came back. `headers` is case-insensitive (urllib3's HTTPHeaderDict); any status, 4xx
    and 5xx included, is a Response: the caller decides what a failure is."""
    status: int
    headers: HTTPHeaderDict
    body: bytes
    url: str  # after redirects
    elapsed_ms: int
    redirects: list[str] = field(default_factory=list)  # the URLs that answered with a redirect

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        """The body as JSON; Failed with a sentence when it is not."""
        try:
            return jsonlib.loads(self.body)
        except ValueError:
            raise Failed(f"The answer from {self.url} is not valid JSON.") from None


class _Watchdog:
    """A hard bound on the whole exchange: at the deadline the socket is shut down, so a server that
    trickles its headers or body a byte at a time cannot hold a worker past `timeout` (urllib3's
    read timeout is per socket read). The timers go into the request's `timers` list, which the
    request cancels when it is done: http.client closes the connection object early when the
    answer says `Connection: close` (the response keeps reading from the socket), so close() is
    not the end of the exchange."""

    def __init__(self, *args, deadline: float, timers: list, **kwargs):
        self._deadline = deadline
        self._timers = timers
        super().__init__(*args, **kwargs)

    def connect(self):
        super().connect()
        timer = threading.Timer(max(self._deadline - time.monotonic(), 0.0), self._cut, args=(self.sock,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    @staticmethod
    def _cut(sock):
        try:  # the plain socket's shutdown: an SSLSocket's would unwrap TLS under the reader's feet
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


class _Connection(_Watchdog, HTTPConnection):
    pass


class _TLSConnection(_Watchdog, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


def _settings() -> tuple:
    """INTEGRATIONS_ALLOW_PRIVATE and BASE_URL of the running app; outside one, the environment."""
    import os

    from flask import current_app, has_app_context
    if has_app_context():
        config = current_app.config
        return config.get("INTEGRATIONS_ALLOW_PRIVATE", False), config.get("BASE_URL", "")
    return os.environ.get("INTEGRATIONS_ALLOW_PRIVATE"), os.environ.get("BASE_URL", "")


def user_agent(base_url: str = "") -> str:
    return f"{USER_AGENT} (+{base_url})" if base_url else USER_AGENT


def check_url(url: str, *, timeout: float = 5.0, unresolvable: type[EgressError] = Refused) -> None:
    """Refused (a sentence) unless `url` is an http(s) URL whose host resolves only to addresses the
    portal may reach. For validating what someone typed into a form: a name that cannot be looked up
    is refused too, with the reason (`unresolvable=Failed` keeps that a failure, which may pass later).
    The request itself checks again when it is made."""
    allow_private, _ = _settings()
    try:
        destinations.resolve(url, allow_private=allow_private, deadline=time.monotonic() + timeout)
    except Failed as error:
        raise unresolvable(str(error)) from None


def _prepare_headers(headers) -> dict[str, str]:
    prepared: dict[str, str] = {}
    for name, value in (headers or {}).items():
        name, value = str(name), str(value)
        if not _TOKEN.match(name) or "\r" in value or "\n" in value or "\x00" in value:
            raise Refused(f"The request header {name[:40]!r} is not a valid HTTP header.")
        if name.lower() == "host":
            continue  # the Host is always the checked URL's
        prepared[name] = value
    return prepared


def request(method: str, url: str, *, headers=None, body: bytes | None = None, timeout: float = 10.0,
            max_bytes: int = 1_000_000, max_redirects: int = 3) -> Response:
    """Send one request to a destination the portal may reach, following up to `max_redirects`
    redirects (each one checked like the first). `timeout` bounds everything, DNS and redirects
    included; the body may be at most `max_bytes`. Raises Refused or Failed (sentences)."""
    method = str(method).upper()
    if not _TOKEN.match(method):
        raise Refused(f"{method[:20]!r} is not an HTTP method.")
    if body is not None and not isinstance(body, (bytes, bytearray)):
        raise TypeError("egress.request takes the body as bytes")
    allow_private, base_url = _settings()
    started = time.monotonic()
    deadline = started + timeout
    sent = _prepare_headers(headers)
    lowered = {name.lower() for name in sent}
    if "user-agent" not in lowered:
        sent["User-Agent"] = user_agent(base_url)
    redirects: list[str] = []
    current = url
    try:
        return _follow(method, current, sent, body, deadline, timeout, max_bytes, max_redirects, allow_private,
                       started, redirects)
    except EgressError as error:
        # The origin only: a path or query may hold a token.
        log.info("outbound %s %s (%d redirects) %s: %s", method, _origin_of(url), len(redirects),
                 "refused" if isinstance(error, Refused) else "failed", error)
        raise


def _origin_of(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"
    except ValueError:
        return "(not a URL)"


def _follow(method, current, sent, body, deadline, timeout, max_bytes, max_redirects, allow_private, started,
            redirects):
    origin = None
    while True:
        destination = destinations.resolve(current, allow_private=allow_private, deadline=deadline)
        if origin is not None and destination.origin != origin:
            # A redirect to another origin does not carry the credentials meant for the first.
            sent = {name: value for name, value in sent.items() if name.lower() not in CREDENTIAL_HEADERS}
        origin = destination.origin
        answer = _exchange(destination, method, sent, body, deadline, timeout, max_bytes)
        status, answer_headers, content, location = answer
        if status in REDIRECTS and location:
            if len(redirects) >= max_redirects:
                raise Failed(f"{destination.host} redirected more than {max_redirects} "
                             f"time{'s' if max_redirects != 1 else ''}; the request was given up.")
            redirects.append(current)
            current = urljoin(destination.url, location)
            if status == 303 or (status in (301, 302) and method == "POST"):
                # As browsers do: the next request is a GET without the body.
                method = "GET" if method != "HEAD" else method
                body = None
                sent = {n: v for n, v in sent.items() if n.lower() not in ("content-type", "content-length")}
            continue
        elapsed = int((time.monotonic() - started) * 1000)
        log.debug("outbound %s %s: %s in %d ms", method, _origin_of(destination.url), status, elapsed)
        return Response(status, answer_headers, content, destination.url, elapsed, redirects)


def _who(destination, address: str) -> str:
    return destination.host if destination.is_literal else f"{destination.host} ({address})"


def _exchange(destination, method, headers, body, deadline, timeout, max_bytes):
    """One hop: connect to the first checked address that accepts, send, read at most max_bytes.
    Returns (status, headers, body, Location or None); a redirect's body is not read."""
    last_error: Failed | None = None
    for address in destination.addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        timers: list[threading.Timer] = []
        pool = _pool(destination, address, deadline, Timeout(connect=min(remaining, timeout), read=remaining), timers)
        try:
            try:
                response = pool.urlopen(method, destination.target, body=body,
                                        headers={**headers, "Host": destination.host_header}, redirect=False,
                                        retries=False, preload_content=False, decode_content=True,
                                        assert_same_host=False, release_conn=False)
            except (u3.NewConnectionError, u3.ConnectTimeoutError) as error:
                last_error = Failed(_connect_failure(destination, address, error, timeout))
                continue  # another address of the name may answer
            except u3.SSLError as error:
                raise Failed(_tls_failure(destination, error)) from None
            except (u3.HTTPError, OSError) as error:
                raise _read_failure(destination, address, error, deadline, timeout) from None
            try:
                location = response.headers.get("Location") if response.status in REDIRECTS else None
                if location:
                    return response.status, response.headers, b"", location
                if method == "HEAD" or response.status in (204, 304):
                    return response.status, response.headers, b"", None  # no body, whatever Content-Length says
                content = _read_body(response, destination, max_bytes)
                if time.monotonic() >= deadline:
                    # The watchdog may have cut a body that had no length: an end that is not one.
                    raise Failed(f"{destination.host} did not answer within {timeout:g} seconds.")
                return response.status, response.headers, content, None
            except (u3.HTTPError, OSError) as error:
                raise _read_failure(destination, address, error, deadline, timeout) from None
            finally:
                response.release_conn()
        finally:
            pool.close()
            for timer in timers:
                timer.cancel()
    if last_error is not None:
        raise last_error
    raise Failed(f"{destination.host} did not answer within {timeout:g} seconds.")


def _pool(destination, address, deadline, timeouts, timers):
    common = dict(host=address, port=destination.port, timeout=timeouts, maxsize=1, retries=False,
                  deadline=deadline, timers=timers)
    if destination.scheme == "https":
        # Connect to the checked address; SNI and the certificate check use the name.
        return _TLSPool(**common, cert_reqs=ssl.CERT_REQUIRED, server_hostname=destination.host,
                        assert_hostname=destination.host)
    return _Pool(**common)


def _read_body(response, destination, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > max_bytes:
        raise Failed(_too_large(destination, max_bytes))
    chunks, size = [], 0
    while True:
        chunk = response.read(CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise Failed(_too_large(destination, max_bytes))
        chunks.append(chunk)


def _too_large(destination, max_bytes: int) -> str:
    return f"The answer from {destination.host} was larger than {max_bytes:,} bytes, the limit; it was not kept."


def _root_cause(error: BaseException) -> BaseException:
    """The innermost exception urllib3 wrapped (its `reason`, or the chained one)."""
    seen = [error]
    while len(seen) < 10:
        inner = getattr(seen[-1], "reason", None) or seen[-1].__cause__ or seen[-1].__context__
        if not isinstance(inner, BaseException) or inner in seen:
            break
        seen.append(inner)
    return seen[-1]


def _connect_failure(destination, address: str, error, timeout: float) -> str:
    who = _who(destination, address)
    cause = _root_cause(error)
    if isinstance(error, u3.ConnectTimeoutError) and not isinstance(error, u3.NewConnectionError) \
            or isinstance(cause, (TimeoutError, socket.timeout)):
        return f"{who} did not accept a connection within {timeout:g} seconds."
    if isinstance(cause, ConnectionRefusedError):
        return f"{who} refused the connection (nothing listens on port {destination.port})."
    reason = getattr(cause, "strerror", None) or cause.__class__.__name__
    return f"Could not connect to {who}: {reason}."


def _tls_failure(destination, error) -> str:
    cause = _root_cause(error)
    detail = getattr(cause, "verify_message", None) or str(cause)
    if isinstance(cause, ssl.SSLCertVerificationError) or "match" in detail or "certificate" in detail.lower():
        return f"The TLS certificate of {destination.host} could not be verified ({detail})."
    return f"The TLS handshake with {destination.host} failed ({detail})."


def _read_failure(destination, address, error, deadline: float, timeout: float) -> Failed:
    if time.monotonic() >= deadline - 0.01 or isinstance(error, u3.ReadTimeoutError) \
            or isinstance(_root_cause(error), (TimeoutError, socket.timeout)):
        return Failed(f"{destination.host} did not answer within {timeout:g} seconds.")
    return Failed(f"The connection to {_who(destination, address)} broke off before a complete answer.")
