"""A person's time zone, for the times the portal shows them (issue 22).

- `users.timezone`: an IANA name (`Europe/Paris`), checked by the application against the
  installed list (portal/timezones.py); NULL until the person chooses one or their browser's
  is detected, and meanwhile times are shown in UTC on the server and in the browser's zone
  by static/time.js.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade(app_role: str = "") -> None:
    op.add_column('users', sa.Column('timezone', sa.String(length=64), nullable=True))


def downgrade(app_role: str = "") -> None:
    op.drop_column('users', 'timezone')
