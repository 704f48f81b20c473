"""Connected apps, the people's side: the authorization (consent) page at /oauth/authorize and
the account's list of apps a person authorised (/account/connected-apps). The OAuth machinery
(Authlib's server, grants, codes, tokens) is portal/api; apps are registered in portal/api_clients."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .views import bp
    app.register_blueprint(bp)
    # A suspended or closed account's apps stop at once (accounts.lifecycle.end_access).
    from ..accounts import lifecycle
    from ..api.grants import revoke_grants
    lifecycle.register_ender("oauth_grants", lambda user_id, tenant_id: revoke_grants(
        user_id, tenant_id=tenant_id, reason="account"))
