"""Refuse to serve through a connection that would bypass row-level security."""
from __future__ import annotations

from sqlalchemy import text

_PROBE = text("""
SELECT r.rolsuper, r.rolbypassrls,
       EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                 AND pg_has_role(current_user, c.relowner, 'USAGE')) AS owns_tables
FROM pg_roles r WHERE r.rolname = current_user
""")


def rls_bypass_reasons(engine) -> list[str]:
    with engine.connect() as conn:
        row = conn.execute(_PROBE).one()
        user = conn.execute(text("SELECT current_user")).scalar_one()
    reasons = []
    if row.rolsuper:
        reasons.append(f"role {user!r} is a superuser")
    if row.rolbypassrls:
        reasons.append(f"role {user!r} has BYPASSRLS")
    if row.owns_tables:
        reasons.append(f"role {user!r} owns (or inherits the owner of) the portal's tables")
    return reasons
