"""The database refuses what the role does not allow (issue 26).

- `portal_may(code)`: true when `code` is in `app.permissions` (set by the statement that
  authenticated the request: a member's roles, an API token's scopes, a SCIM token's provisioning
  role, an inbound hook's `events:write`), or when the transaction runs as an explicit system
  actor (`app.actor`, set only by `tenant_scope(..., actor=...)`/`acting_as(...)` in Python and by
  the entry functions of device agents and the OAuth endpoints). `portal_must(codes...)` is the
  same check for DELETE policies, raising insufficient_privilege instead of hiding rows
  (PostgreSQL filters an UPDATE's or DELETE's USING silently; WITH CHECK raises).
- RESTRICTIVE policies (AND-ed with `tenant_isolation`) for INSERT, UPDATE and DELETE on every
  tenant table whose writes a permission guards (POLICIES below). UPDATE policies check WITH
  CHECK only: `SELECT ... FOR UPDATE` also applies UPDATE's USING, and a member who may read and
  lock a row to be told why they may not change it must not get a 404 instead. DELETE policies
  call `(SELECT portal_must(...))`, a pseudo-constant the planner tests once before any row.
- A RESTRICTIVE SELECT policy `site_scope` on sites, devices, tasks and agent tasks: without
  `sites:see-all`, only the sites in `app.site_ids`, which the entry functions set (a member's
  assignments, an API client's or a token's sites).
- What a policy cannot say (it sees the old row or the new one, never both), BEFORE UPDATE
  triggers do: a member may touch their own membership's `last_active_at` (and delete it:
  leaving) but change nothing else of it without `members:manage`; `devices:status` changes a
  device's status only; the `tenants` row (no RLS: it has no tenant_id) changes only in the tenant
  the request entered, with `tenant:manage`, or `audit:manage` for the audit log's retention.
- The entry functions clear `app.actor`, `app.permissions` and `app.site_ids` first and set what
  their principal may do; `portal_enter_tenant` also sets a member's sites when they do not see
  every site.
- Tables written as a side effect of other actions carry no permission policy: the list is
  `portal.database.validate.SIDE_EFFECT_TABLES`, which `flask db validate` checks against.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07 10:00:00
"""
import importlib.util
from pathlib import Path

from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

USER = "(SELECT portal_user())"
# The site_scope (SELECT) policies are planned for every read of sites, devices and tasks, so
# they are written out in plain expressions of the settings rather than with the helpers below:
# an inlined SQL function is parsed again at every planning, and the device list's two tables
# cost 0.12 ms more planning that way on each statement (bench, 100,000 devices).
# "Sees every site": portal_may('sites:see-all'), as true or NULL, tested with IS NOT NULL: the
# planner estimates a boolean parameter at 0.5 but IS NOT NULL at 0.995, so the row estimates
# (and plans) of someone who sees every site stay those without the policy (the device count at
# 100,000 devices turned from an index scan into a sort of the whole tenant, 3x slower, with the
# plain boolean).
SEES_ALL = ("(SELECT CASE WHEN coalesce(current_setting('app.actor', true), '') <> '' OR 'sites:see-all' = ANY "
            "(string_to_array(coalesce(current_setting('app.permissions', true), ''), ',')) THEN true END) IS NOT NULL")
# The sites of everyone else: app.site_ids, set by the entry function (a member's assignments, an
# API client's sites, a person's token's). Unset, nothing.
# (Parsed once, in the sub-select: cast outside it, the text would be parsed for every row. The
# outer cast changes nothing but makes it `ANY (array)` rather than `ANY (subquery)`.)
IN_SCOPE = "= ANY ((SELECT NULLIF(current_setting('app.site_ids', true), '')::uuid[])::uuid[])"
SCOPE_USER = "(SELECT NULLIF(current_setting('app.user_id', true), '')::uuid)"

# The policies' helpers. Plain SQL expressions of the settings, so that the planner inlines them
# (a SET clause, or PL/pgSQL, would make each a function call planned per statement): their
# search_path is pinned by qualifying every name (pg_catalog.*, public.*, OPERATOR(...); NULLIF's
# text equality can only be pg_catalog's: the serving role can create no operator, and pg_temp is
# never searched for one), which holds whatever search_path the caller has. portal_must raises,
# so it is PL/pgSQL, with SET.
FUNCTIONS = {
    "public.portal_may(text)": """
CREATE FUNCTION public.portal_may(p_code text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- An explicit system actor (a job, a command, an agent, the OAuth endpoints), or a code of the
    -- permission set the request's entry statement chose.
    SELECT coalesce(pg_catalog.current_setting('app.actor', true), '') OPERATOR(pg_catalog.<>) ''
        OR p_code OPERATOR(pg_catalog.=) ANY (pg_catalog.string_to_array(
               coalesce(pg_catalog.current_setting('app.permissions', true), ''), ','))
$$""",
    "public.portal_system()": """
CREATE FUNCTION public.portal_system() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(pg_catalog.current_setting('app.actor', true), '') OPERATOR(pg_catalog.<>) ''
$$""",
    "public.portal_must(text[])": """
CREATE FUNCTION public.portal_must(VARIADIC p_codes text[]) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, public AS $$
BEGIN
    -- A DELETE's USING cannot raise by itself: rows it refuses would simply not be deleted.
    IF public.portal_system() OR EXISTS (SELECT 1 FROM unnest(p_codes) c WHERE public.portal_may(c)) THEN
        RETURN true;
    END IF;
    RAISE EXCEPTION 'permission denied: %', coalesce('the role does not allow ' || nullif(array_to_string(p_codes, ' or '), ''),
                                                     'only a system actor may do this')
        USING ERRCODE = 'insufficient_privilege';
END
$$""",
    "public.portal_user()": """
CREATE FUNCTION public.portal_user() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT NULLIF(pg_catalog.current_setting('app.user_id', true), '')::pg_catalog.uuid
$$""",
}


def may(*codes: str) -> str:
    return "(" + " OR ".join(f"(SELECT portal_may('{c}'))" for c in codes) + ")"


def must(*codes: str) -> str:
    return "(SELECT portal_must(" + ", ".join(f"'{c}'" for c in codes) + "))"


SYSTEM = "(SELECT portal_system())"
SYSTEM_ONLY = "(SELECT portal_must(VARIADIC '{}'::text[]))"  # no code: only a system actor passes
# Custom events only with events:write; the portal's own (device status, sign-ins, agent tasks:
# the namespaces analytics.events.RESERVED keeps from custom events) are side effects of other actions.
OWN_EVENT = "(split_part(event_type, '.', 1) IN ('device', 'member', 'agent', 'portal'))"
ASSIGNED_TASK = (f"EXISTS (SELECT 1 FROM tasks t WHERE t.tenant_id = task_comments.tenant_id "
                 f"AND t.id = task_comments.task_id AND t.assignee_id = {USER})")

# table -> (INSERT WITH CHECK, UPDATE WITH CHECK, DELETE USING)
POLICIES = {
    "sites": (may("sites:write"), may("sites:write"), must("sites:write")),
    "user_site_assignments": (may("sites:assign"), may("sites:assign"), must("sites:assign")),
    "devices": (may("devices:write"), may("devices:write", "devices:status"), must("devices:write")),
    "tasks": (may("tasks:write"),
              f"({may('tasks:write')} OR ({may('tasks:work')} AND assignee_id = {USER}))",
              must("tasks:write")),
    "task_comments": (f"({may('tasks:work')} AND ({may('tasks:write')} OR {ASSIGNED_TASK}))",
                      may("tasks:write"), must("tasks:write")),
    "agent_credentials": (may("agents:manage"), may("agents:manage"), must("agents:manage")),
    "agent_tasks": (may("agents:run", "agents:manage"), may("agents:run", "agents:manage"), must("agents:manage")),
    # Written by device agents and the expiry job only (system actors).
    "agent_results": (SYSTEM, SYSTEM, SYSTEM_ONLY),
    "api_clients": (may("api:manage"), may("api:manage"), must("api:manage")),
    # Issued, revoked and pruned by the OAuth endpoints and jobs (actors), or by api:manage.
    "api_tokens": (may("api:manage"), may("api:manage"), must("api:manage")),
    "integrations": (may("integrations:manage"), may("integrations:manage"), must("integrations:manage")),
    "scim_tokens": (may("sso:manage"), may("sso:manage"), must("sso:manage")),
    "scim_users": (may("sso:manage"), may("sso:manage"), must("sso:manage")),
    "scim_groups": (may("sso:manage"), may("sso:manage"), must("sso:manage")),
    "scim_group_members": (may("sso:manage"), may("sso:manage"), must("sso:manage")),
    "sso_connections": (may("sso:manage"), may("sso:manage"), must("sso:manage")),
    "sso_domains": (may("sso:manage"), may("sso:manage"), must("sso:manage")),
    "sso_group_mappings": (may("sso:manage"), may("sso:manage"), must("sso:manage")),
    "sso_identities": (may("sso:manage"), may("sso:manage"), must("sso:manage")),
    "tenant_exports": (may("tenant:manage"), may("tenant:manage"), must("tenant:manage")),
    "tenant_logos": (may("tenant:manage"), may("tenant:manage"), must("tenant:manage")),
    "tenant_slug_redirects": (may("tenant:manage"), may("tenant:manage"), must("tenant:manage")),
    "tenant_invitations": (may("invitations:manage"), may("invitations:manage"), must("invitations:manage")),
    "tenant_roles": (may("roles:manage"), may("roles:manage"), must("roles:manage")),
    "tenant_role_permissions": (may("roles:manage"), may("roles:manage"), must("roles:manage")),
    "user_roles": (may("members:manage"), may("members:manage"), must("members:manage")),
    # Leaving deletes one's own membership; one's own last_active_at is touched by every reader
    # (the trigger below keeps the rest of one's own row). The DELETE check depends on the row, so
    # it filters rather than raises (a raising check could meet rows the statement never deletes,
    # in whatever order the planner tests them): members.services.remove counts what it deleted.
    "user_tenant_associations": (
        may("members:manage"),
        f"({may('members:manage')} OR user_id = {USER})",
        f"({may('members:manage')} OR user_id = {USER})"),
    # Never updated; deleted by retention (a job) only.
    "analytics_events": (f"({may('events:write')} OR {OWN_EVENT})", SYSTEM, SYSTEM_ONLY),
}

# table -> what a principal without sites:see-all may read
SITE_SCOPE = {
    "sites": f"id {IN_SCOPE}",
    "devices": f"site_id {IN_SCOPE}",
    "tasks": f"site_id IS NULL OR site_id {IN_SCOPE} OR assignee_id = {SCOPE_USER} OR created_by = {SCOPE_USER}",
    # A device's agent tasks: as its device (the devices policy applies inside).
    "agent_tasks": ("EXISTS (SELECT 1 FROM devices d WHERE d.tenant_id = agent_tasks.tenant_id "
                    "AND d.id = agent_tasks.device_id)"),
}

# Column-level rules no policy can state (a policy sees the old row or the new one, never both).
# The serving role only: the tables' owner (migrations, SECURITY DEFINER functions) is not held to
# them, as it is not to row-level security.
GUARD_UPDATE = """
CREATE FUNCTION public.portal_guard_update() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    v_new jsonb := to_jsonb(NEW);
    v_old jsonb := to_jsonb(OLD);
BEGIN
    -- TG_ARGV[0]: the permission that allows any change the policies allow; TG_ARGV[1:]: the
    -- columns that may change without it (generated columns follow the others).
    IF public.portal_may(TG_ARGV[0])
       OR pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
        RETURN NEW;
    END IF;
    FOR i IN 1 .. TG_NARGS - 1 LOOP
        v_new := v_new - TG_ARGV[i];
        v_old := v_old - TG_ARGV[i];
    END LOOP;
    IF v_new IS DISTINCT FROM v_old THEN
        RAISE EXCEPTION 'permission denied: without % only % of a % row may change', TG_ARGV[0],
            array_to_string(TG_ARGV[1:TG_NARGS - 1], ', '), TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$"""
# table -> (trigger, permission that allows any change, columns that may change without it)
GUARDED_UPDATES = {
    # Every page view touches one's own last_active_at (the UPDATE policy lets a member change their
    # own row for it); the rest of one's own row needs members:manage, as anyone else's.
    "user_tenant_associations": ("membership_self_update", "members:manage", ("last_active_at", "updated_at")),
    # devices:status changes the status of devices one sees, nothing else of them.
    "devices": ("device_status_only", "devices:write",
                ("status", "updated_at", "name_key", "serial_key", "last_seen_key")),
}

# The tenant's own row (tenants has no tenant_id, so no RLS): a request changes only the tenant it
# entered, its settings with tenant:manage, the audit log's retention with audit:manage. The
# console, jobs and commands are system actors; the owner is not held to it.
TENANT_GUARD = """
CREATE FUNCTION public.tenant_update_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    v_code text := 'tenant:manage';
BEGIN
    IF public.portal_system()
       OR pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
        RETURN NEW;
    END IF;
    IF to_jsonb(NEW) - 'settings' - 'updated_at' = to_jsonb(OLD) - 'settings' - 'updated_at'
       AND coalesce(NEW.settings, '{}') - 'audit' = coalesce(OLD.settings, '{}') - 'audit' THEN
        v_code := 'audit:manage';  -- only the audit log's retention (audit.retention)
    END IF;
    IF OLD.id IS DISTINCT FROM nullif(current_setting('app.tenant_id', true), '')::uuid
       OR NOT public.portal_may(v_code) THEN
        RAISE EXCEPTION 'permission denied: the role does not allow % of this organization', v_code
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$"""

CLEAR = ("PERFORM set_config('app.actor', '', true);\n"
         "    PERFORM set_config('app.permissions', '', true);\n"
         "    PERFORM set_config('app.site_ids', '', true);")


def _module(name: str):
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replace(body: str, old: str, new: str) -> str:
    assert body.count(old) == 1, old
    return body.replace(old, new)


def _or_replace(body: str) -> str:
    return body.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def _entry_functions(new: bool) -> list[str]:
    """The entry functions: as 0026 left them, or clearing and setting what their principal may do."""
    m13, m14, m22, m24, m25, m26 = (_module(n) for n in (
        "0013_api_clients_and_tokens.py", "0014_device_agents.py", "0022_oauth.py", "0024_integrations.py",
        "0025_scim.py", "0026_role_sets.py"))
    enter_tenant = m26.ENTER_TENANT
    token = _or_replace(m22.ENTER_TOKEN.replace(m26.OLD_TOKEN_ROLE, m26.NEW_TOKEN_ROLE))
    client = _or_replace(m13.CLIENT_AUTH)
    app = _or_replace(m22.OAUTH_APP)
    agent = _or_replace(m14.CREDENTIAL)
    inbound = _or_replace(m24.INBOUND)
    scim = _or_replace(m25.ENTER)
    if not new:
        return [enter_tenant, token, client, app, agent, inbound, scim]
    enter_tenant = _replace(enter_tenant, "PERFORM set_config('app.permissions', '', true);", CLEAR)
    permissions_set = ("WHERE public.portal_tenant_usable(t_status) OR split_part(p, ':', 2) IN ('view', 'see-all')), "
                       "','), true);")
    enter_tenant = _replace(enter_tenant, permissions_set, permissions_set + MEMBER_SITES)
    tenant_clear = "PERFORM set_config('app.tenant_id', '', true);"
    token = _replace(token, tenant_clear, tenant_clear + "\n    " + CLEAR)
    token = _replace(token, "AS $$\nBEGIN", "AS $$\nDECLARE\n    v_codes text[];\nBEGIN")
    token = _replace(token, "        -- As portal_enter_tenant: tenants differ", TOKEN_PERMISSIONS
                     + "        -- As portal_enter_tenant: tenants differ")
    # A client authenticated at the OAuth endpoints issues, revokes and reads its own tokens.
    client = _replace(client, tenant_clear, tenant_clear + "\n    " + CLEAR)
    client = _replace(client, "PERFORM set_config('app.tenant_id', t_id::text, true);",
                      "PERFORM set_config('app.tenant_id', t_id::text, true);\n"
                      "        PERFORM set_config('app.actor', 'oauth:' || c_id, true);")
    app = _replace(app, "        PERFORM set_config('app.tenant_id', '', true);",
                   "        PERFORM set_config('app.tenant_id', '', true);\n        " + CLEAR.replace("\n    ", "\n        "))
    app = _replace(app, "PERFORM set_config('app.tenant_id', t_id::text, true);",
                   "PERFORM set_config('app.tenant_id', t_id::text, true);\n"
                   "        PERFORM set_config('app.actor', 'oauth:' || c_id, true);")
    # A device's agent: its heartbeats, task claims and results, for its device (or a gateway's).
    agent = _replace(agent, tenant_clear, tenant_clear + "\n    " + CLEAR)
    agent = _replace(agent, "PERFORM set_config('app.tenant_id', a_tenant_id::text, true);",
                     "PERFORM set_config('app.tenant_id', a_tenant_id::text, true);\n"
                     "    PERFORM set_config('app.actor', 'agent:' || a_device_id, true);")
    # An inbound hook, before its signature is checked: it may record events, nothing else.
    inbound = _replace(inbound, tenant_clear, tenant_clear + "\n    " + CLEAR)
    inbound = _replace(inbound, "PERFORM set_config('app.tenant_id', found::text, true);",
                       "PERFORM set_config('app.tenant_id', found::text, true);\n"
                       "        PERFORM set_config('app.permissions', 'events:write', true);")
    # A SCIM token: the provisioning role (scim.auth.PROVISIONING), every permission, reads only
    # in an archived tenant; the owner rules are the application's, as for people.
    scim = _replace(scim, tenant_clear, tenant_clear + "\n    " + CLEAR)
    scim = _replace(scim, "PERFORM set_config('app.tenant_id', t_id::text, true);",
                    "PERFORM set_config('app.tenant_id', t_id::text, true);\n"
                    "        PERFORM set_config('app.permissions', (SELECT string_agg(pm.name, ',' ORDER BY pm.name)\n"
                    "            FROM public.permissions pm WHERE public.portal_tenant_usable(t_status)\n"
                    "                OR pm.action IN ('view', 'see-all')), true);")
    return [enter_tenant, token, client, app, agent, inbound, scim]


# In portal_enter_tenant, after app.permissions: the sites of a member who does not see every site
# (the site_scope policies read them; the request reads its assignments as they were when it began).
MEMBER_SITES = """
    IF NOT 'sites:see-all' = ANY (string_to_array(current_setting('app.permissions', true), ',')) THEN
        PERFORM set_config('app.site_ids', ARRAY(SELECT a.site_id FROM public.user_site_assignments a
                                                  WHERE a.tenant_id = t_id AND a.user_id = p_user_id)::text, true);
    END IF;"""

# In portal_api_enter_token, once the tenant is entered: a client's scopes (sites:see-all when it
# is not limited to sites, app.site_ids when it is); a person's permissions within the token's
# scopes, their site scope following them. Reads only in an archived tenant, as for members.
TOKEN_PERMISSIONS = """        IF g_id IS NULL THEN
            v_codes := ARRAY(SELECT DISTINCT s::text FROM unnest(k_scopes) s
                              WHERE s::text <> 'sites:see-all' AND s IN (SELECT pm.name FROM public.permissions pm));
            IF c_site_ids IS NULL THEN
                v_codes := v_codes || 'sites:see-all'::text;
            ELSE
                PERFORM set_config('app.site_ids', c_site_ids::text, true);
            END IF;
        ELSE
            v_codes := ARRAY(SELECT p FROM unnest(r_permissions) p
                              WHERE p = ANY (k_scopes::text[]) OR p = 'sites:see-all');
            IF NOT 'sites:see-all' = ANY (v_codes) THEN
                PERFORM set_config('app.site_ids', ARRAY(
                    SELECT a.site_id FROM public.user_site_assignments a
                     WHERE a.tenant_id = t_id AND a.user_id = u_id)::text, true);
            END IF;
        END IF;
        PERFORM set_config('app.permissions', array_to_string(ARRAY(
            SELECT p FROM unnest(v_codes) p
             WHERE public.portal_tenant_usable(t_status) OR split_part(p, ':', 2) IN ('view', 'see-all')), ','), true);
"""


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    for signature, body in FUNCTIONS.items():
        op.execute(body)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    for body in _entry_functions(True):
        op.execute(body)
    for table, (insert, update, delete) in POLICIES.items():
        op.execute(f"CREATE POLICY may_insert ON {table} AS RESTRICTIVE FOR INSERT WITH CHECK ({insert})")
        op.execute(f"CREATE POLICY may_update ON {table} AS RESTRICTIVE FOR UPDATE USING (true) WITH CHECK ({update})")
        op.execute(f"CREATE POLICY may_delete ON {table} AS RESTRICTIVE FOR DELETE USING ({delete})")
    for table, condition in SITE_SCOPE.items():
        op.execute(f"CREATE POLICY site_scope ON {table} AS RESTRICTIVE FOR SELECT USING ({SEES_ALL} OR {condition})")
    op.execute(GUARD_UPDATE)
    for table, (trigger, code, columns) in GUARDED_UPDATES.items():
        args = ", ".join(f"'{a}'" for a in (code, *columns))
        op.execute(f"CREATE TRIGGER {trigger} BEFORE UPDATE ON {table} FOR EACH ROW "
                   f"EXECUTE FUNCTION portal_guard_update({args})")
    op.execute(TENANT_GUARD)
    op.execute("CREATE TRIGGER tenant_update_guard BEFORE UPDATE ON tenants FOR EACH ROW "
               "EXECUTE FUNCTION tenant_update_guard()")
    role = _app_role(app_role)
    if role:
        for signature in FUNCTIONS:
            op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {role}")


def downgrade(app_role: str = "") -> None:  # noqa: ARG001
    op.execute("DROP TRIGGER tenant_update_guard ON tenants")
    op.execute("DROP FUNCTION tenant_update_guard()")
    for table, (trigger, _, _) in GUARDED_UPDATES.items():
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    op.execute("DROP FUNCTION portal_guard_update()")
    for table in SITE_SCOPE:
        op.execute(f"DROP POLICY site_scope ON {table}")
    for table in POLICIES:
        for name in ("may_insert", "may_update", "may_delete"):
            op.execute(f"DROP POLICY {name} ON {table}")
    for body in _entry_functions(False):
        op.execute(body)
    for signature in reversed(list(FUNCTIONS)):
        op.execute(f"DROP FUNCTION {signature}")
