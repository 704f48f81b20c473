"""A requests transport adapter that sends through `egress.request`, for libraries that talk HTTP
through a `requests.Session` of their own (Authlib's OAuth clients): mount it and every request the
session makes is resolved, checked and pinned like an integration's.

    session.trust_env = False          # no proxy or .netrc from the environment
    session.mount("http://", EgressAdapter()); session.mount("https://", EgressAdapter())

Egress follows redirects itself (each hop checked), so requests sees only the final answer.
`egress.Refused` and `egress.Failed` come out of `session.request(...)` as they are, sentences.
"""
from __future__ import annotations

import datetime
from http import HTTPStatus

from requests import PreparedRequest, Response
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from .client import request
from .errors import Refused

DEFAULT_TIMEOUT = 10.0
# Set by requests for its own connection pool; egress opens and closes one connection per request.
_HOP_BY_HOP = {"connection", "keep-alive"}


def _seconds(timeout) -> float:
    """requests' timeout (None, seconds, or a (connect, read) pair) as egress's one total bound."""
    if isinstance(timeout, tuple):
        parts = [float(t) for t in timeout if t is not None]
        return sum(parts) if parts else DEFAULT_TIMEOUT
    return float(timeout) if timeout else DEFAULT_TIMEOUT


def _body(prepared: PreparedRequest) -> bytes | None:
    body = prepared.body
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    raise Refused("A streamed request body cannot be sent through the outbound-request policy.")


class EgressAdapter(BaseAdapter):
    def __init__(self, *, max_bytes: int = 1_000_000, max_redirects: int = 3):
        super().__init__()
        self.max_bytes, self.max_redirects = max_bytes, max_redirects

    def send(self, prepared: PreparedRequest, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        # verify, cert and proxies are not ours to change: egress always checks certificates
        # (the system's trust store) and never uses a proxy, which would resolve the name again.
        headers = {name: value for name, value in prepared.headers.items() if name.lower() not in _HOP_BY_HOP}
        answer = request(prepared.method, prepared.url, headers=headers, body=_body(prepared),
                         timeout=_seconds(timeout), max_bytes=self.max_bytes, max_redirects=self.max_redirects)
        response = Response()
        response.status_code = answer.status
        try:
            response.reason = HTTPStatus(answer.status).phrase
        except ValueError:
            response.reason = ""
        response.headers = CaseInsensitiveDict({name: answer.headers[name] for name in answer.headers})
        response.headers.pop("Content-Encoding", None)  # egress already decoded the body
        response._content = answer.body
        response._content_consumed = True  # the body is all here; there is no raw stream to read
        response.encoding = get_encoding_from_headers(response.headers)
        response.url = answer.url
        response.request = prepared
        response.connection = self
        response.elapsed = datetime.timedelta(milliseconds=answer.elapsed_ms)
        return response

    def close(self):
        pass
