"""An organization's OpenID provider, through Authlib's Flask client built per connection:
discovery, authorization code flow with PKCE (S256), state and nonce kept in the signed session
until the callback, the ID token checked against the discovery document's issuer and keys.

An organization's admin chooses the issuer, and its discovery document chooses the token, key set
and userinfo endpoints: every request Authlib makes for a connection (discovery, token, JWKS,
userinfo) goes through `portal.egress` (EgressSession), under the rules of integrations
(INTEGRATIONS_ALLOW_PRIVATE), so neither a DNS answer changed after the issuer was saved nor a
discovery document naming an internal address makes the portal reach its own network.
"""
from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from authlib.integrations.flask_client import FlaskIntegration, FlaskOAuth2App
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app, session

from .. import egress
from .models import SsoConnection
from .sealing import unseal

NAME = "sso-org"  # one name for every connection: the state in the session says which (views)
SCOPE = "openid email profile"
TIMEOUT = 10


# The endpoints of a discovery document the portal itself calls (the authorization endpoint is
# the browser's to visit), in words for an admin.
SERVER_ENDPOINTS = {"token_endpoint": "token endpoint", "jwks_uri": "key set (jwks_uri)",
                    "userinfo_endpoint": "userinfo endpoint"}


class MisconfiguredProvider(Exception):
    """The discovery document names another issuer than the connection's."""


class EgressSession(OAuth2Session):
    """Authlib's requests session with every request sent through portal.egress: resolved once,
    checked, connected to the checked address, redirects checked, size and time bounded."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trust_env = False  # no proxy (it would resolve the name again) and no .netrc credentials
        adapter = egress.EgressAdapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)


class OrganizationClient(FlaskOAuth2App):
    # Authlib makes both its sessions from client_cls: the plain one (discovery, JWKS) and the
    # OAuth one (token, userinfo).
    client_cls = EgressSession


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
        egress.check_url(issuer)
    except egress.Refused as exc:
        return str(exc)
    return None


def client_for(connection: SsoConnection) -> OrganizationClient:
    secret = None
    if connection.client_secret:
        secret = unseal(connection.client_secret, tenant_id=connection.tenant_id, row_id=connection.id)
    kwargs = {"scope": SCOPE, "code_challenge_method": "S256", "default_timeout": TIMEOUT}
    if not secret:
        kwargs["token_endpoint_auth_method"] = "none"  # a public client: PKCE alone
    return OrganizationClient(FlaskIntegration(NAME), name=NAME, client_id=connection.client_id, client_secret=secret,
                          server_metadata_url=f"{connection.issuer.rstrip('/')}/.well-known/openid-configuration",
                          client_kwargs=kwargs)


def checked(client: OrganizationClient, connection: SsoConnection) -> OrganizationClient:
    """The client with its discovery document loaded and naming this connection's issuer (the ID
    token's `iss` is then validated against it), and the endpoints it names ones the portal may
    reach. egress.Refused or egress.Failed (sentences) when the provider cannot be used."""
    metadata = client.load_server_metadata()
    issuer = (metadata.get("issuer") or "").rstrip("/")
    if issuer != connection.issuer.rstrip("/"):
        raise MisconfiguredProvider(f"discovery names issuer {issuer!r}, the connection {connection.issuer!r}")
    _check_endpoints(metadata)
    return client


def _check_endpoints(metadata: dict) -> None:
    """Checked now, before the person goes to the provider: a refusal after they signed in there
    would waste their trip. Each request checks again when made (EgressSession), so a DNS answer
    that changes after this check is never used."""
    seen = set()
    for key, label in SERVER_ENDPOINTS.items():
        url = metadata.get(key)
        if url is None or (isinstance(url, str) and _origin(url) in seen):
            continue
        try:
            egress.check_url(url, unresolvable=egress.Failed)
        except egress.Refused as exc:
            raise egress.Refused(f"The provider's discovery document names a {label} the portal will not "
                                 f"connect to: {exc}") from None
        seen.add(_origin(url))


def _origin(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}".lower()
    except ValueError:
        return url


def forget_state(state: str) -> None:
    FlaskIntegration(NAME).clear_state_data(session, state)


def claims_of(client: OrganizationClient, token: dict) -> dict:
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
