"""The shard-ready check (tests/shard_ready.py, `make test-shard-ready`) judges statements as Citus
would route them: it must pass what one shard can answer and catch what it cannot."""
from __future__ import annotations

import pytest

from shard_ready import unpinned_tables

TABLES = frozenset({"devices", "sites", "tasks", "tenant_role_permissions"})

ROUTED = [
    "SELECT id FROM devices WHERE tenant_id = %(t)s::UUID AND id = %(id)s",
    # A co-located join: sites follows devices' pinned tenant.
    "SELECT d.id FROM devices d JOIN sites s ON s.tenant_id = d.tenant_id AND s.id = d.site_id "
    "WHERE d.tenant_id = %(t)s",
    # A correlated subquery on the same tenant.
    "SELECT id FROM devices WHERE tenant_id = %(t)s AND EXISTS "
    "(SELECT 1 FROM sites s WHERE s.tenant_id = devices.tenant_id AND s.archived_at IS NULL)",
    "WITH recent AS (SELECT * FROM tasks WHERE tenant_id = $1) SELECT count(*) FROM recent",
    "INSERT INTO devices (id, tenant_id, name) VALUES (%(id)s, %(t)s, 'x') RETURNING id",
    "INSERT INTO sites (tenant_id, name) SELECT d.tenant_id, d.name FROM devices d WHERE d.tenant_id = $1",
    "UPDATE devices SET name = %(n)s WHERE devices.tenant_id = %(t)s AND devices.id = %(id)s",
    "DELETE FROM tasks WHERE tenant_id = %(t)s AND id = ANY(%(ids)s)",
    # What SQLAlchemy's selectin loading writes for one parent: PostgreSQL reads it as equalities.
    "SELECT * FROM tenant_role_permissions WHERE (tenant_id, role_id) IN ((%(a)s, %(b)s))",
    "SELECT 1 FROM tasks LEFT JOIN sites ON sites.tenant_id = tasks.tenant_id WHERE false",
    "SELECT portal_request_context(%(token)s)",  # a function: reviewed in docs/isolation.md
    "SELECT * FROM devices WHERE name LIKE 'a%%' AND tenant_id = %s",
]

SCATTERED = [
    ("SELECT * FROM devices WHERE id = %(id)s", ("devices",)),  # RLS alone does not route
    ("SELECT * FROM devices WHERE tenant_id = %(t)s OR id = %(id)s", ("devices",)),
    ("SELECT * FROM devices WHERE tenant_id = ANY(%(ids)s)", ("devices",)),
    ("SELECT * FROM devices WHERE tenant_id IN (%(a)s, %(b)s)", ("devices",)),
    # Joined on the site alone: sites is not known to be on the same shard.
    ("SELECT d.id FROM devices d JOIN sites s ON s.id = d.site_id WHERE d.tenant_id = %(t)s", ("sites",)),
    # Pinned through another table's column: only known once that table is read.
    ("SELECT * FROM devices d WHERE d.tenant_id = (SELECT tenant_id FROM sites WHERE id = 1)", ("devices", "sites")),
    ("SELECT count(*) FROM devices UNION ALL SELECT count(*) FROM sites WHERE tenant_id = 'a'", ("devices",)),
    ("INSERT INTO devices (id, name) VALUES (%(id)s, 'x')", ("devices",)),
    ("UPDATE tasks SET title = 'x' WHERE id = %(id)s", ("tasks",)),
    ("DELETE FROM sites USING devices WHERE sites.tenant_id = %(t)s AND devices.site_id = sites.id", ("devices",)),
]


@pytest.mark.parametrize("sql", ROUTED)
def test_statements_one_shard_answers_pass(sql):
    assert unpinned_tables(sql, TABLES) == ()


@pytest.mark.parametrize("sql,tables", SCATTERED)
def test_statements_spanning_shards_are_caught(sql, tables):
    assert unpinned_tables(sql, TABLES) == tables
