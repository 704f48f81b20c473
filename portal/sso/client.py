"""The provider, through authlib's Flask client: discovery, authorization code flow with
PKCE (S256), state and nonce (authlib keeps them in the signed session until the callback).

Unlike organizations' providers (provider.py), this one does not go through portal.egress: the
operator names it (OIDC_ISSUER, in the environment) and it is as trusted as the database URL. It is
often on the operator's own network, and letting egress reach it would mean listing it in
INTEGRATIONS_ALLOW_PRIVATE, which would open it to every organization's integrations as well."""
from __future__ import annotations

from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app, session

NAME = "sso"
SCOPE = "openid email profile"
TIMEOUT = 10  # seconds for every call to the provider (discovery, keys, token, userinfo)


class MisconfiguredProvider(Exception):
    """The provider's discovery document names another issuer than OIDC_ISSUER."""


def register(app: Flask) -> None:
    cfg = app.config
    client_kwargs = {"scope": SCOPE, "code_challenge_method": "S256", "default_timeout": TIMEOUT}
    if not cfg["OIDC_CLIENT_SECRET"]:
        client_kwargs["token_endpoint_auth_method"] = "none"  # a public client: PKCE alone
    oauth = OAuth(app)
    oauth.register(NAME, client_id=cfg["OIDC_CLIENT_ID"], client_secret=cfg["OIDC_CLIENT_SECRET"] or None,
                   server_metadata_url=f"{cfg['OIDC_ISSUER']}/.well-known/openid-configuration",
                   client_kwargs=client_kwargs)


def _client():
    return current_app.extensions["authlib.integrations.flask_client"].create_client(NAME)


def provider():
    """The registered client, with its discovery document loaded (cached after the first call)
    and checked: the ID token's `iss` is validated against that document, so it must be ours."""
    client = _client()
    issuer = (client.load_server_metadata().get("issuer") or "").rstrip("/")
    if issuer != current_app.config["OIDC_ISSUER"]:
        raise MisconfiguredProvider(f"discovery names issuer {issuer!r}, OIDC_ISSUER is "
                                    f"{current_app.config['OIDC_ISSUER']!r}")
    return client


def provider_state_clear(state: str) -> None:
    """Forget a pending attempt's state (its PKCE verifier and nonce), e.g. after a refusal."""
    _client().framework.clear_state_data(session, state)
