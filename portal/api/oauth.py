"""OAuth 2.0 for machines, on Authlib's Flask authorization server: the client credentials
grant at POST /oauth/token (client authentication by HTTP Basic or form fields), revocation
(RFC 7009) at POST /oauth/revoke and introspection (RFC 7662) at POST /oauth/introspect, each
answering a client about its own tokens only.

A client is authenticated by `portal_api_client_auth(client id, secret hash)` (migration
0013), which answers only for the right secret and enters the client's tenant (RLS); every
token read or written afterwards is under that tenant's row-level security.
"""
from __future__ import annotations

import base64
from uuid import UUID

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Blueprint, current_app, g, request

from ..database.context import adopt
from ..extensions import db
from ..tenancy import Permission
from ..tenancy.queries import attach_tenant
from . import credentials, services
from .auth import rate_limit

_AUTH = "SELECT * FROM portal_api_client_auth(%(client_id)s, %(hash)s)"
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
SCOPES = frozenset(p.value for p in Permission)


class Client(ClientMixin):
    """A client as Authlib sees it: only its id until its secret has been checked (the database
    answers nothing about a client without the right secret)."""

    def __init__(self, client_id: UUID):
        self.id, self.tenant, self.name, self.scopes = client_id, None, "", []

    def get_client_id(self):
        return str(self.id)

    def check_client_secret(self, client_secret):
        row = db.session.connection().exec_driver_sql(
            _AUTH, {"client_id": self.id, "hash": credentials.secret_hash(client_secret)}).first()
        if row is None or row.t_id is None:
            return False
        self.tenant = attach_tenant(row)
        if not self.tenant.is_readable:
            return False  # a suspended tenant's clients get no token
        adopt(tenant_id=self.tenant.id)  # the function has set it
        self.name, self.scopes = row.c_name, list(row.c_scopes or [])
        g.audit_client_actor = {"type": "api_client", "id": str(self.id), "name": self.name}
        return True

    def check_endpoint_auth_method(self, method, endpoint):
        return method in AUTH_METHODS

    def check_grant_type(self, grant_type):
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope):
        """Every scope of the client, or those asked for (the grant has checked it holds them);
        a blank `scope` asks for none in particular."""
        asked = set((scope or "").split())
        return " ".join(sorted(asked & set(self.scopes) if asked else self.scopes))

    def check_response_type(self, response_type):
        return False

    def check_redirect_uri(self, redirect_uri):
        return False

    def get_default_redirect_uri(self):
        return None


class Token(TokenMixin):
    def __init__(self, row, client_id):
        self.row, self.client_id = row, client_id

    def check_client(self, client):
        return self.row.client_ref == client.id

    def get_scope(self):
        return " ".join(self.row.scopes or [])

    def get_expires_in(self):
        return int((self.row.expires_at - self.row.created_at).total_seconds())

    def is_expired(self):
        return self.row.expires_at <= services._now()

    def is_revoked(self):
        return self.row.revoked_at is not None


def _query_client(client_id):
    try:
        return Client(UUID(str(client_id)))
    except ValueError:
        return None


def _save_token(token, req):
    client = req.client
    services.issue_token(client.tenant.id, client.id, token["access_token"], (token.get("scope") or "").split(),
                         token["expires_in"])


def _query_token(token_string, token_type_hint):
    client = request_client()
    if client is None or client.tenant is None:
        return None
    row = services.find_token(client.tenant.id, token_string)
    return Token(row, client.id) if row is not None else None


def request_client():
    return g.get("oauth_client")


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_requested_scope(self):
        """RFC 6749 5.2: a scope that does not exist, or that the client does not hold, is an
        `invalid_scope` error (400), not a token with less than was asked for. (Authlib's own
        check reads `scopes_supported`, which its init_app resets from the config.)"""
        asked = set(scope_to_list(self.request.payload.scope) or [])
        if asked - SCOPES:  # not echoed: a description may hold only printable ASCII (RFC 6749 5.2)
            raise InvalidScopeError("A scope asked for does not exist.")
        missing = sorted(asked - set(self.request.client.scopes))
        if missing:
            raise InvalidScopeError(f"This client does not hold the scope: {' '.join(missing)}.")


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def authenticate_endpoint_client(self, req):
        client = super().authenticate_endpoint_client(req)
        g.oauth_client = client
        return client

    def query_token(self, token_string, token_type_hint):
        return _query_token(token_string, token_type_hint)

    def authenticate_token(self, req, client):
        # RFC 7009 2.2: a token the client does not own is answered like an unknown one (200).
        self.check_params(req, client)
        token = self.query_token(req.form["token"], req.form.get("token_type_hint"))
        return token if token is not None and token.check_client(client) else None

    def revoke_token(self, token, req):
        services.revoke_token(token.row)


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def authenticate_endpoint_client(self, req):
        client = super().authenticate_endpoint_client(req)
        g.oauth_client = client
        return client

    def query_token(self, token_string, token_type_hint):
        return _query_token(token_string, token_type_hint)

    def check_permission(self, token, client, req):
        return token.check_client(client)  # a client introspects its own tokens only

    def introspect_token(self, token):
        row = token.row
        return {"active": True, "client_id": str(row.client_ref), "token_type": "Bearer",
                "scope": token.get_scope(), "exp": int(row.expires_at.timestamp()),
                "iat": int(row.created_at.timestamp()), "sub": str(row.client_ref)}


class Server(AuthorizationServer):
    def create_bearer_token_generator(self, config):
        return BearerTokenGenerator(lambda **kwargs: credentials.new_token(), None,
                                    lambda client, grant_type: current_app.config["API_TOKEN_TTL"])


server = Server(query_client=_query_client, save_token=_save_token)
server.register_grant(ClientCredentialsGrant)
server.register_endpoint(Revocation)
server.register_endpoint(Introspection)

bp = Blueprint("oauth", __name__, url_prefix="/oauth")


def _client_id_of_request() -> str:
    """The client named by the request (Basic or form), for the per-client rate limit; the
    address when none is named."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip()).decode().partition(":")[0][:100]
        except (ValueError, UnicodeDecodeError):
            pass
    return (request.form.get("client_id") or "")[:100] or f"addr:{request.remote_addr}"


@bp.before_request
def _limit():
    # Per client, and per address too: cycling through made-up client ids gains nothing.
    rate_limit("oauth-addr", request.remote_addr or "-")
    rate_limit("oauth", _client_id_of_request())


@bp.post("/token")
def token():
    return server.create_token_response()


@bp.post("/revoke")
def revoke():
    return server.create_endpoint_response(Revocation.ENDPOINT_NAME)


@bp.post("/introspect")
def introspect():
    return server.create_endpoint_response(Introspection.ENDPOINT_NAME)


def init_app(app) -> None:
    server.init_app(app)
