"""OAuth 2.0 for machines and apps, on Authlib's Flask authorization server: the client
credentials grant, the authorization code grant with PKCE (S256 only, required of every app) and
rotating refresh tokens for apps people connect (api/grants.py; the authorization page is
portal/connected_apps), revocation (RFC 7009) at POST /oauth/revoke, introspection (RFC 7662) at
POST /oauth/introspect, each answering a client about its own tokens only, and the server's
metadata (RFC 8414) at /.well-known/oauth-authorization-server.

A confidential client is authenticated by `portal_api_client_auth(client id, secret hash)`
(migration 0013), which answers only for the right secret and enters the client's tenant (RLS);
a public app (no secret: PKCE protects its codes) by `portal_oauth_app(client id, true)`
(migration 0019). Every code or token read or written afterwards is under that tenant's RLS.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from uuid import UUID

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin
from authlib.oauth2.rfc6749 import grants as grants_
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Blueprint, current_app, g, jsonify, request

from ..database.context import adopt
from ..extensions import db
from ..tenancy import Permission
from ..tenancy.queries import attach_tenant
from . import credentials, grants, services
from .auth import rate_limit

# With the actor the functions set on entering ("oauth:<client id>": the client issues, revokes
# and reads its own tokens), read back in the same statement.
_AUTH = "SELECT f.*, current_setting('app.actor', true) AS db_actor FROM portal_api_client_auth(%(client_id)s, %(hash)s) f"
_APP = "SELECT f.*, current_setting('app.actor', true) AS db_actor FROM portal_oauth_app(%(client_id)s, %(enter)s) f"
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
SCOPES = frozenset(p.value for p in Permission)


_UNLOADED = object()


class Client(ClientMixin):
    """A client as Authlib sees it: only its id until its secret has been checked (the database
    answers nothing about a client without the right secret). An app (`app()`) is described by
    portal_oauth_app, which says nothing about client-credentials clients."""

    def __init__(self, client_id: UUID):
        self.id, self.tenant, self.name, self._scopes, self._app = client_id, None, "", [], _UNLOADED

    def app(self):
        """The app's row (tenant, name, scopes, redirect URIs, public), or None: not an app."""
        if self._app is _UNLOADED:
            row = db.session.connection().exec_driver_sql(_APP, {"client_id": self.id, "enter": False}).first()
            self._app = row if row is not None and row.c_id is not None else None
        return self._app

    @property
    def scopes(self) -> list[str]:
        app = self.app() if not self._scopes else None
        return list(app.c_scopes or []) if app is not None else self._scopes

    def get_client_id(self):
        return str(self.id)

    def _entered(self, row) -> bool:
        self.tenant = attach_tenant(row)
        if not self.tenant.is_readable:
            return False  # a suspended tenant's clients get no token
        adopt(tenant_id=self.tenant.id, actor=row.db_actor)  # the function has set them
        self.name, self._scopes = row.c_name, list(row.c_scopes or [])
        g.audit_client_actor = {"type": "api_client", "id": str(self.id), "name": self.name}
        return True

    def check_client_secret(self, client_secret):
        row = db.session.connection().exec_driver_sql(
            _AUTH, {"client_id": self.id, "hash": credentials.secret_hash(client_secret)}).first()
        if row is None or row.t_id is None:
            return False
        return self._entered(row)

    def check_endpoint_auth_method(self, method, endpoint):
        if method == "none":
            # A public app authenticates by its client id alone (RFC 6749 2.1; PKCE guards its codes).
            row = db.session.connection().exec_driver_sql(_APP, {"client_id": self.id, "enter": True}).first()
            return row is not None and row.c_id is not None and row.c_is_public and self._entered(row)
        return method in AUTH_METHODS

    def check_grant_type(self, grant_type):
        if self.app() is not None:
            return grant_type in ("authorization_code", "refresh_token")
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope):
        """Every scope of the client, or those asked for (the grant has checked it holds them);
        a blank `scope` asks for none in particular."""
        asked = set((scope or "").split())
        return " ".join(sorted(asked & set(self.scopes) if asked else self.scopes))

    def check_response_type(self, response_type):
        return response_type == "code" and self.app() is not None  # no implicit grant (OAuth 2.1)

    def check_redirect_uri(self, redirect_uri):
        app = self.app()
        return app is not None and redirect_uri in (app.c_redirect_uris or [])  # exact match

    def get_default_redirect_uri(self):
        app = self.app()
        uris = list(app.c_redirect_uris or []) if app is not None else []
        return uris[0] if len(uris) == 1 else None


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


class Credential(TokenMixin):
    """An authorization code or a refresh token of an app (grants.Found), as Authlib sees it."""

    def __init__(self, found: grants.Found, client_id: UUID):
        self.found, self.row, self.grant, self.client_id = found, found.row, found.grant, client_id
        self.code_challenge = getattr(self.row, "code_challenge", None)
        self.code_challenge_method = getattr(self.row, "code_challenge_method", None)

    def check_client(self, client):
        return self.grant.client_ref == client.id

    def get_redirect_uri(self):
        return self.row.redirect_uri

    def get_scope(self):
        return " ".join(self.row.scopes or [])

    def get_expires_in(self):
        return int((self.row.expires_at - self.row.created_at).total_seconds())

    def is_expired(self):
        return self.row.expires_at <= services._now()

    def is_revoked(self):
        return not self.found.live

    def get_user(self):
        return Person(self.grant.user_id)


@dataclass(frozen=True)
class Person:
    """The person an app's token acts for."""
    id: UUID


def _query_client(client_id):
    try:
        return Client(UUID(str(client_id)))
    except ValueError:
        return None


def _save_token(token, req):
    client = req.client
    scopes = (token.get("scope") or "").split()
    grant = g.get("oauth_grant")
    if grant is not None:
        previous = getattr(req, "refresh_token", None)
        # A narrower refresh narrows the access token only: the grant's refresh token keeps its scope.
        refresh_scopes = (previous.get_scope().split() if isinstance(previous, Credential) else scopes)
        grants.issue(client.tenant.id, client.id, grant.id, token["access_token"], scopes, token["expires_in"],
                     token.get("refresh_token"), refresh_scopes)
        return
    services.issue_token(client.tenant.id, client.id, token["access_token"], scopes, token["expires_in"])


def _query_token(token_string, token_type_hint):
    client = request_client()
    if client is None or client.tenant is None:
        return None
    # By its prefix, whatever the hint says (RFC 7009 2.1: a wrong hint must not hide a token).
    if token_string.startswith(credentials.REFRESH_PREFIX):
        found = grants.find_refresh_token(client.tenant.id, client.id, token_string)
        return Credential(found, client.id) if found is not None else None
    row = services.find_token(client.tenant.id, token_string)
    return Token(row, client.id) if row is not None else None


def request_client():
    return g.get("oauth_client")


def _validate_scope(grant_obj):
    """RFC 6749 5.2: a scope that does not exist, or that the client does not hold, is an
    `invalid_scope` error (400), not a token with less than was asked for. (Authlib's own
    check reads `scopes_supported`, which its init_app resets from the config.)"""
    asked = set(scope_to_list(grant_obj.request.payload.scope) or [])
    if asked - SCOPES:  # not echoed: a description may hold only printable ASCII (RFC 6749 5.2)
        raise InvalidScopeError("A scope asked for does not exist.")
    missing = sorted(asked - set(grant_obj.request.client.scopes))
    if missing:
        raise InvalidScopeError(f"This client does not hold the scope: {' '.join(missing)}.")


def _reused(found: grants.Found, reason: str) -> None:
    """A used code or refresh token came back: someone holds a copy. The whole grant ends
    (RFC 6749 4.1.2, RFC 9700 4.14.2); the token view commits it although the answer is an error."""
    g.oauth_reuse = (found.grant.tenant_id, found.grant.id, reason)


class AuthorizationCodeGrant(grants_.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS + ["none"]

    def validate_requested_scope(self):
        _validate_scope(self)

    def save_authorization_code(self, code, req):
        data = req.payload.data
        grants.save_code(g.oauth_consented.tenant_id, g.oauth_consented.id, code,
                         redirect_uri=req.payload.redirect_uri or "", scopes=(req.scope or "").split(),
                         challenge=data.get("code_challenge"), method=data.get("code_challenge_method"))

    def query_authorization_code(self, code, client):
        found = grants.find_code(client.tenant.id, client.id, code)
        if found is None:
            return None
        if found.reused:
            _reused(found, "code_reuse")
            return None
        if not found.live:
            return None
        g.oauth_grant = found.grant
        return Credential(found, client.id)

    def delete_authorization_code(self, authorization_code):
        grants.mark_used(authorization_code.row)  # kept, used: a second redemption is recognised

    def authenticate_user(self, authorization_code):
        return authorization_code.get_user()


class PKCE(CodeChallenge):
    """PKCE as OAuth 2.1 has it: a code_challenge on every authorization request, S256 only
    (`plain` would send the verifier itself through the browser)."""
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only code_challenge_method=S256 is supported.")
        return super().validate_code_challenge(grant, redirect_uri)


class RefreshTokenGrant(grants_.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS + ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: each refresh token is good for one use

    def authenticate_refresh_token(self, refresh_token):
        client = self.request.client
        found = grants.find_refresh_token(client.tenant.id, client.id, refresh_token)
        if found is None:
            return None
        if found.reused:
            _reused(found, "refresh_reuse")
            return None
        if not found.live:
            return None
        g.oauth_grant = found.grant
        return Credential(found, client.id)

    def authenticate_user(self, refresh_token):
        return refresh_token.get_user()

    def revoke_old_credential(self, refresh_token):
        grants.mark_used(refresh_token.row)


class ClientCredentialsGrant(grants_.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_requested_scope(self):
        _validate_scope(self)


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS + ["none"]  # a public app may revoke its own tokens
    SUPPORTED_TOKEN_TYPES = ("access_token", "refresh_token")

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
        if isinstance(token, Credential):
            # RFC 7009 2.1: a revoked refresh token takes its grant's access tokens with it.
            grants.revoke_grant(token.grant.tenant_id, None, token.grant, "app_revoked")
        else:
            services.revoke_token(token.row)


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def authenticate_endpoint_client(self, req):
        client = super().authenticate_endpoint_client(req)
        g.oauth_client = client
        return client

    def query_token(self, token_string, token_type_hint):
        token = _query_token(token_string, token_type_hint)
        return token if isinstance(token, Token) else None  # access tokens only

    def check_permission(self, token, client, req):
        return token.check_client(client)  # a client introspects its own tokens only

    def introspect_token(self, token):
        row = token.row
        sub = str(row.client_ref)
        if row.grant_ref is not None:  # an app's token for a person: active while the grant is
            grant = grants.get_grant(row.tenant_id, row.grant_ref)
            if grant is None or grant.revoked_at is not None:
                return {"active": False}
            sub = str(grant.user_id)
        return {"active": True, "client_id": str(row.client_ref), "token_type": "Bearer",
                "scope": token.get_scope(), "exp": int(row.expires_at.timestamp()),
                "iat": int(row.created_at.timestamp()), "sub": sub}


class Server(AuthorizationServer):
    def create_bearer_token_generator(self, config):
        return BearerTokenGenerator(lambda **kwargs: credentials.new_token(),
                                    lambda **kwargs: credentials.new_refresh_token(),
                                    lambda client, grant_type: current_app.config["API_TOKEN_TTL"])


server = Server(query_client=_query_client, save_token=_save_token)
server.register_grant(ClientCredentialsGrant)
server.register_grant(AuthorizationCodeGrant, [PKCE(required=True)])
server.register_grant(RefreshTokenGrant)
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
    response = server.create_token_response()
    reuse = g.pop("oauth_reuse", None)
    if reuse is not None:
        # The refusal rolls the request back at the edge; the grant's end must outlive it.
        db.session.rollback()
        tenant_id, grant_id, reason = reuse
        grant = grants.get_grant(tenant_id, grant_id, for_update=True)
        if grant is not None:
            grants.revoke_grant(tenant_id, None, grant, reason)
        db.session.commit()
    return response


@bp.post("/revoke")
def revoke():
    return server.create_endpoint_response(Revocation.ENDPOINT_NAME)


@bp.post("/introspect")
def introspect():
    return server.create_endpoint_response(Introspection.ENDPOINT_NAME)


meta = Blueprint("oauth_metadata", __name__)


@meta.get("/.well-known/oauth-authorization-server")
def metadata():
    """RFC 8414: where the endpoints are and what this server supports."""
    base = request.url_root.rstrip("/")
    response = jsonify({
        "issuer": base,
        "authorization_endpoint": base + "/oauth/authorize",
        "token_endpoint": base + "/oauth/token",
        "revocation_endpoint": base + "/oauth/revoke",
        "introspection_endpoint": base + "/oauth/introspect",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS + ["none"],
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS + ["none"],
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "scopes_supported": [p.value for p in Permission],
    })
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def init_app(app) -> None:
    server.init_app(app)
