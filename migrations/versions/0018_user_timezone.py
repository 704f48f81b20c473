"""A person's time zone, for the times the portal shows them (issue 22).

- `users.timezone`: an IANA name (`Europe/Paris`), checked by the application against the
  installed list (portal/timezones.py); NULL until the person chooses one or their browser's
  is detected, and meanwhile times are shown in UTC on the server and in the browser's zone
  by static/time.js.
- `portal_request_context` returns it too (`u_timezone`): every page shows times, and the
  request's first statement already reads the user's row (the list pages stay at two
  statements). The function is migration 0006's with that one column more.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08 10:00:00
"""
import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

SIGNATURE = "public.portal_request_context(bytea, uuid, integer, text)"


def _migration_0006():
    path = Path(__file__).with_name("0006_roles_as_data.py")
    spec = importlib.util.spec_from_file_location("migration_0006", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _with_timezone(body: str) -> str:
    """0006's function with u_timezone after u_password_changed_at, in its result and its SELECT."""
    edits = [("u_password_changed_at timestamptz,", "u_password_changed_at timestamptz, u_timezone varchar,"),
             ("u.password_changed_at, s.id,", "u.password_changed_at, u.timezone, s.id,"),
             ("u_password_changed_at, s_id,", "u_password_changed_at, u_timezone, s_id,")]
    for old, new in edits:
        assert body.count(old) == 1, old
        body = body.replace(old, new)
    return body


def _replace(body: str, app_role: str) -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")  # its result type changes: CREATE OR REPLACE cannot
    op.execute(body)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    role = _migration_0006()._app_role(app_role)
    if role:
        op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {role}")


def upgrade(app_role: str = "") -> None:
    op.add_column('users', sa.Column('timezone', sa.String(length=64), nullable=True))
    _replace(_with_timezone(_migration_0006().REQUEST_CONTEXT), app_role)


def downgrade(app_role: str = "") -> None:
    _replace(_migration_0006().REQUEST_CONTEXT, app_role)
    op.drop_column('users', 'timezone')
