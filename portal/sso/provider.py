"""An organization's OpenID provider, through Authlib's Flask client built per connection:
discovery, authorization code flow with PKCE (S256), state and nonce kept in the signed session
until the callback, the ID token checked against the discovery document's issuer and keys."""
from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from authlib.integrations.flask_client import FlaskIntegration, FlaskOAuth2App
from flask import current_app, session

from .models import SsoConnection
from .sealing import unseal

NAME = "sso-org"  # one name for every connection: the state in the session says which (views)
SCOPE = "openid email profile"
TIMEOUT = 10


class MisconfiguredProvider(Exception):
    """The discovery document names another issuer than the connection's."""


def keycloak_issuer(base_url: str, realm: str) -> str:
    """Keycloak's issuer for a realm: {base}/realms/{realm} (Keycloak 17+; older ones under /auth)."""
    return f"{base_url.strip().rstrip('/')}/realms/{quote(realm.strip(), safe='')}"


ISSUER = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")


def issuer_problem(issuer: str) -> str | None:
    """Why a typed issuer URL cannot be one, in words; None when it can."""
    if not ISSUER.fullmatch(issuer or ""):
        return "Enter the issuer's URL, e.g. https://sso.example.com/realms/acme."
    parts = urlsplit(issuer)
    if parts.scheme != "https" and not current_app.config.get("SSO_ALLOW_HTTP"):
        return "The issuer must use https."
    try:
        from .. import egress  # the outbound-request policy, when that branch is installed
    except ImportError:
        return None
    try:
        egress.check_url(issuer)
    except egress.Refused as exc:
        return str(exc)
    return None


def client_for(connection: SsoConnection) -> FlaskOAuth2App:
    secret = None
    if connection.client_secret:
        secret = unseal(connection.client_secret, tenant_id=connection.tenant_id, row_id=connection.id)
    kwargs = {"scope": SCOPE, "code_challenge_method": "S256", "default_timeout": TIMEOUT}
    if not secret:
        kwargs["token_endpoint_auth_method"] = "none"  # a public client: PKCE alone
    return FlaskOAuth2App(FlaskIntegration(NAME), name=NAME, client_id=connection.client_id, client_secret=secret,
                          server_metadata_url=f"{connection.issuer.rstrip('/')}/.well-known/openid-configuration",
                          client_kwargs=kwargs)


def checked(client: FlaskOAuth2App, connection: SsoConnection) -> FlaskOAuth2App:
    """The client with its discovery document loaded and naming this connection's issuer (the ID
    token's `iss` is then validated against it)."""
    issuer = (client.load_server_metadata().get("issuer") or "").rstrip("/")
    if issuer != connection.issuer.rstrip("/"):
        raise MisconfiguredProvider(f"discovery names issuer {issuer!r}, the connection {connection.issuer!r}")
    return client


def forget_state(state: str) -> None:
    FlaskIntegration(NAME).clear_state_data(session, state)


def claims_of(client: FlaskOAuth2App, token: dict) -> dict:
    """The verified ID token's claims, completed from userinfo (email, name, groups) when the ID
    token lacks them and userinfo speaks of the same subject (OIDC Core 5.3.2)."""
    claims = dict(token.get("userinfo") or {})
    if not claims.get("sub"):
        raise ValueError("no ID token in the token response")
    wanted = ("email", "email_verified", "name", "given_name", "family_name", "preferred_username", "groups")
    if any(key not in claims for key in wanted) and client.load_server_metadata().get("userinfo_endpoint"):
        try:
            extra = client.userinfo(token=token)
        except Exception as exc:  # noqa: BLE001 - optional: the ID token alone may do
            current_app.logger.info("userinfo not read: %r", exc)
            extra = {}
        if str(extra.get("sub")) == str(claims["sub"]):
            for key in wanted:
                if key not in claims and key in extra:
                    claims[key] = extra[key]
    return claims
