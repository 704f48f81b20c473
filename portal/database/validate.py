"""The live schema's invariants, checked by `flask db validate` and by the schema tests.

Every table with tenant_id is isolated (NOT NULL, forced RLS, a tenant policy) and distributable
(a tenant-leading index, tenant_id in its primary key, unique constraints and foreign keys to other
tenant tables), and its writes are checked against the principal's permissions (RESTRICTIVE
INSERT, UPDATE and DELETE policies calling portal_may, portal_must or portal_system; migration
0027) unless it is on the side-effect list below; every table that belongs to a user instead (a
user_id, no tenant_id) has forced RLS and a policy that reads by app.user_id; the serving role
cannot bypass RLS and holds only the privileges it needs; the database is at the migrations' head
and the models match it.
"""
from __future__ import annotations

import sqlalchemy as sa

TENANT_TABLES_SQL = """
SELECT c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity, c.relispartition
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname
"""


# Tenant tables whose writes no permission guards: written as a side effect of whatever action
# happens (or by the system's own machinery), so they carry no permission policy. Any other tenant
# table without one is reported. A new table goes here only with its reason.
SIDE_EFFECT_TABLES = {
    "audit_logs": "every change writes its audit row, whoever may make the change (append-only for the serving role)",
    "audit_checkpoints": "the audit chain's pruning record, written by audit_prune (SECURITY DEFINER)",
    "analytics_daily": "the events' daily rollup, kept by the statement that records the events",
    "api_idempotency_keys": "the API's replay protection, written beside any API write",
    "integration_log": "integrations' deliveries, syncs and inbound batches, written as events happen",
    "integration_inbound_ids": "an inbound hook's replay protection, written with the batch it protects",
    "tenant_keys": "the keyring's data keys: made with the tenant (the console) or lazily by the keyring, "
                   "rotated by `flask keys`",
    "oauth_grants": "a person's consent to an app: no role permission guards it (any member may connect an app, "
                    "and its tokens are capped by the person's permissions at every request); ended by the person, "
                    "an owner (api:manage in the view), revocations (SECURITY DEFINER) and membership changes",
    "oauth_authorization_codes": "the OAuth flow's single-use codes, written when a person consents and spent "
                                 "at the token endpoint",
    "oauth_refresh_tokens": "the OAuth flow's rotating refresh tokens, written and spent at the token endpoint",
}
_GUARDS = ("portal_may(", "portal_must(", "portal_system(")
_COMMANDS = {"a": "INSERT", "w": "UPDATE", "d": "DELETE"}


def _unguarded_commands(policies) -> list[str]:
    """The write commands without a RESTRICTIVE policy whose check calls a permission function."""
    def guards(cmd, using, check) -> bool:
        text = {"a": check, "w": check or using, "d": using}[cmd] or ""  # UPDATE without WITH CHECK checks USING
        return any(g in text for g in _GUARDS)

    return [name for cmd, name in _COMMANDS.items()
            if not any(not permissive and polcmd in (cmd, "*") and guards(cmd, using, check)
                       for _, using, check, polcmd, permissive in policies)]


def tenant_table_problems(conn) -> dict[str, list[str]]:
    """{table: [problem, ...]} for every public table with a tenant_id column that breaks a rule."""
    problems: dict[str, list[str]] = {}
    tables = conn.execute(sa.text(TENANT_TABLES_SQL)).all()
    for oid, name, rls, forced, partition in tables:
        found = []
        notnull = conn.execute(sa.text(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = :o AND attname = 'tenant_id'"), {"o": oid}).scalar()
        if not notnull:
            found.append("tenant_id is nullable")
        if not (rls and forced):
            found.append("row-level security is not enabled and forced")
        policies = conn.execute(sa.text(
            "SELECT polname, pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid), polcmd, "
            "polpermissive FROM pg_policy WHERE polrelid = :o"), {"o": oid}).all()
        tenant_policy = [p for p in policies if p[1] and "app.tenant_id" in p[1] and p[3] == "*"
                         and p[2] and "app.tenant_id" in p[2] and "nullif" in p[1]]
        if not tenant_policy:
            found.append("no ALL-commands policy on app.tenant_id (with nullif) for USING and WITH CHECK")
        # A partition is written through its parent (whose policies apply); the serving role has no grant on it.
        unguarded = [] if partition or name in SIDE_EFFECT_TABLES else _unguarded_commands(policies)
        if unguarded:
            found.append(f"writes have no permission policy ({', '.join(unguarded)}): add RESTRICTIVE policies "
                         "calling portal_may/portal_must (migration 0027), or list the table in "
                         "validate.SIDE_EFFECT_TABLES with the reason")
        indexes = conn.execute(sa.text(
            "SELECT i.indkey::int2[] AS cols, i.indisunique, i.indisprimary, ic.relname FROM pg_index i "
            "JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = :o"), {"o": oid}).all()
        tenant_attnum = conn.execute(sa.text(
            "SELECT attnum FROM pg_attribute WHERE attrelid = :o AND attname = 'tenant_id'"), {"o": oid}).scalar()
        if not any(cols and cols[0] == tenant_attnum for cols, *_ in indexes):
            found.append("no index leads with tenant_id")
        for cols, unique, primary, iname in indexes:
            if (unique or primary) and tenant_attnum not in cols:
                found.append(f"{'primary key' if primary else 'unique index'} {iname} lacks tenant_id")
        if not any(primary for _, _, primary, _ in indexes):
            found.append("no primary key")
        fks = conn.execute(sa.text(
            "SELECT conname, confrelid::regclass::text, conkey::int2[] FROM pg_constraint "
            "WHERE conrelid = :o AND contype = 'f'"), {"o": oid}).all()
        tenant_table_names = {t[1] for t in tables}
        for conname, target, cols in fks:
            if target in tenant_table_names and tenant_attnum not in cols:
                found.append(f"foreign key {conname} to tenant table {target} lacks tenant_id")
        if found:
            problems[name] = found
    return problems


USER_TABLES_SQL = """
SELECT c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_attribute t WHERE t.attrelid = c.oid AND t.attname = 'tenant_id'
                  AND NOT t.attisdropped)
ORDER BY c.relname
"""


def user_table_problems(conn) -> dict[str, list[str]]:
    """{table: [problem, ...]} for every public table with user_id and no tenant_id (a person's own
    rows: sessions, sign-ins, passkeys...) that is not under forced RLS keyed on app.user_id."""
    problems: dict[str, list[str]] = {}
    for oid, name, rls, forced in conn.execute(sa.text(USER_TABLES_SQL)).all():
        found = []
        if not (rls and forced):
            found.append("row-level security is not enabled and forced")
        policies = conn.execute(sa.text(
            "SELECT pg_get_expr(polqual, polrelid), polcmd FROM pg_policy WHERE polrelid = :o"), {"o": oid}).all()
        reading = [using for using, cmd in policies if cmd in ("*", "r")]
        if not any(using and "app.user_id" in using and "nullif" in using for using in reading):
            found.append("no policy reads by app.user_id (with nullif)")
        if any(using is None or using.strip("() ") == "true" for using in reading):
            found.append("a policy lets every row be read")
        if found:
            problems[name] = found
    return problems


# What the serving role may do: read and write rows, never change the schema; the audit trail is append-only.
ALLOWED_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE"}
APPEND_ONLY = {"audit_logs": {"SELECT", "INSERT"}}

_SERVING_ROLE = sa.text("""
SELECT r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb,
       has_schema_privilege(current_user, 'public', 'CREATE') AS can_create,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND pg_has_role(current_user, c.relowner, 'USAGE')) AS owned
FROM pg_roles r WHERE r.rolname = current_user
""")
_TABLE_PRIVILEGES = sa.text("""
SELECT table_name, array_agg(privilege_type::text ORDER BY privilege_type) AS privileges
FROM information_schema.role_table_grants
WHERE table_schema = 'public' AND grantee = current_user GROUP BY table_name
""")


def serving_role_problems(conn) -> list[str]:
    """Run on the serving connection (DATABASE_URL)."""
    user = conn.execute(sa.text("SELECT current_user")).scalar()
    row = conn.execute(_SERVING_ROLE).one()
    found = []
    for flag, text in ((row.rolsuper, "is a superuser"), (row.rolbypassrls, "has BYPASSRLS"),
                       (row.rolcreaterole, "may create roles"), (row.rolcreatedb, "may create databases"),
                       (row.can_create, "may create objects in schema public"),
                       (row.owned, "owns (or inherits the owner of) tables in schema public")):
        if flag:
            found.append(f"serving role {user!r} {text}")
    for table, privileges in conn.execute(_TABLE_PRIVILEGES).all():
        extra = set(privileges) - APPEND_ONLY.get(table, ALLOWED_PRIVILEGES)
        if extra:
            found.append(f"serving role {user!r} has {', '.join(sorted(extra))} on {table}")
    return found


# The SECURITY DEFINER entry functions read rows before any tenant is entered (a bearer token's, an
# agent's credential, an SSO domain's route), under forced RLS: only an owner that bypasses it
# finds them. They are the narrow doors (docs/isolation.md); the permission policies do not apply
# inside them either.
_DEFINER_OWNERS = sa.text("""
SELECT r.rolname, r.rolsuper OR r.rolbypassrls AS bypasses, count(*) AS functions
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles r ON r.oid = p.proowner
WHERE n.nspname = 'public' AND p.prosecdef GROUP BY 1, 2
""")


def definer_owner_problems(conn) -> list[str]:
    return [f"{role!r} owns {n} SECURITY DEFINER function(s) but cannot bypass row-level security: they would find "
            f"nothing before a tenant is entered (ALTER ROLE {role} BYPASSRLS)"
            for role, bypasses, n in conn.execute(_DEFINER_OWNERS).all() if not bypasses]


def drift_problems(app) -> list[str]:
    """Pending migrations, and differences between the models and the migrated schema (`flask db check`)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from ..extensions import db
    found = []
    heads = set(ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config()).get_heads())
    engine = sa.create_engine(app.config.get("MIGRATION_DATABASE_URL") or app.config["DATABASE_URL"],
                              poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
            if current != heads:
                found.append(f"database at revision {', '.join(sorted(current)) or 'none'}, "
                             f"migrations at {', '.join(sorted(heads))}: run `flask db upgrade`")
                return found
            context = MigrationContext.configure(conn, opts={
                "compare_type": True, "include_object": include_object, "target_metadata": db.metadata})
            for diff in compare_metadata(context, db.metadata):
                found.append(f"models and migrations differ: {diff}")
    finally:
        engine.dispose()
    return found


def include_object(obj, name, type_, reflected, compare_to):
    """Tables the models do not describe: Alembic's own, the job engine's (migration 0007) and the
    month partitions of analytics_events (migration 0015; made by a function, not by the models)."""
    if type_ == "index" and reflected and compare_to is None and getattr(obj, "table", None) is not None:
        return not obj.table.name.startswith("analytics_events_")
    return not (type_ == "table" and (name == "alembic_version" or name.startswith("procrastinate_")
                                      or (reflected and compare_to is None and name.startswith("analytics_events_"))))


def validate(app) -> list[str]:
    """Every violation, one line each; empty when the database is sound."""
    from ..extensions import db
    found = drift_problems(app)
    with db.engine.connect() as conn:
        found += serving_role_problems(conn)
        found += definer_owner_problems(conn)
        for table, problems in (tenant_table_problems(conn) | user_table_problems(conn)).items():
            found += [f"{table}: {problem}" for problem in problems]
    return found
