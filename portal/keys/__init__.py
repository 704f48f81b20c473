"""Keys: the installation's keyring. Master keys from the environment (PORTAL_MASTER_KEYS, newest
first) wrap one data key per tenant, and one for the installation; `seal`/`unseal` encrypt values
with them (AES-GCM, bound to tenant, table, column and row). See docs/security.md, Keys.

    register("integrations", "credentials")                       # at import, by the owning area
    row.credentials = seal(data, tenant_id=t, table="integrations", column="credentials", row_id=row.id)
    data = unseal(row.credentials, tenant_id=t, table="integrations", column="credentials", row_id=row.id)
"""
from __future__ import annotations

from flask import Flask

from .cipher import Unreadable
from .keyring import (REGISTRY, create_tenant_key, forget, installation_secret, lookup_hash, master_keys, register,
                      seal, unseal)

__all__ = ["REGISTRY", "Unreadable", "create_tenant_key", "forget", "installation_secret", "lookup_hash",
           "master_keys", "register", "seal", "unseal"]


def init_app(app: Flask) -> None:
    from .cli import keys_cli
    app.cli.add_command(keys_cli)
