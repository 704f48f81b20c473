"""Every user-scoped table under row-level security (issue 26).

- `user_sessions`, `login_events`, `mfa_backup_codes`, `account_tokens`, `authenticators` and
  `webauthn_challenges` get ENABLE + FORCE ROW LEVEL SECURITY and the policy `user_own`
  (USING and WITH CHECK `user_id = app.user_id`), as notifications, avatars and exports have:
  a transaction reads and changes only its own user's rows, and nothing with no user set.
- Two rows have no user yet, so each gets one more narrow policy: a failed sign-in on an
  address with no account (`login_events_unknown_account_insert`, INSERT only: nobody reads
  those rows but `portal_signin_failures`), and a passwordless sign-in's challenge, made before
  anyone is known (`webauthn_challenges_signin`, purpose 'signin' with no user).
- `portal_request_context` sets app.user_id to the claimed user first, reads the session under
  `user_own`, and clears it again when no valid session is found: still one statement per
  request, the same result. Edited in place from the live definition (pg_get_functiondef), so
  whichever migration defined it last keeps its columns.
- The few readers across users or before anyone is signed in, SECURITY DEFINER with
  search_path pinned, EXECUTE for the serving role only:
  `portal_signin_failures(email, reasons, window)` (the per-account throttle: a count and the
  oldest time, nothing else), `portal_account_token(hash, purpose)` (a usable reset or
  email-change link, found by the SHA-256 of its token), `portal_passkey_owner(credential)`
  (whose passkey a credential id is: passwordless sign-in, and refusing one registered twice),
  `portal_account_sessions(user, idle)` (the console's count of an account's active sessions
  and its last activity, for an active system admin only), and
  `portal_prune_signin_history(events_days, sessions_days)` (the daily prune: old sign-in
  events, long-ended sessions, stale challenges).

TOTP lives in columns of `users` (not under RLS: signing in reads it by email). `sso_identities`
stays a tenant table with its tenant policy only: a provider's callback finds the account by the
link itself, before anyone is known, and the organization's connection page lists its members'.

Revision ID: 0028
Revises: 0027
"""
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

ME = "(SELECT nullif(current_setting('app.user_id', true), ''))::uuid"
OWN = f"(user_id = {ME})"
TABLES = ("user_sessions", "login_events", "mfa_backup_codes", "account_tokens", "authenticators",
          "webauthn_challenges")
EXTRA_POLICIES = {
    "login_events_unknown_account_insert": ("login_events", "FOR INSERT WITH CHECK (user_id IS NULL)"),
    "webauthn_challenges_signin": ("webauthn_challenges", "USING (user_id IS NULL AND purpose = 'signin') "
                                   "WITH CHECK (user_id IS NULL AND purpose = 'signin')"),
}

DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public"
FUNCTIONS = {
    # Counts, never rows: failed attempts on one address (any account, or none) in the window.
    "public.portal_signin_failures(text, text[], integer)": f"""
CREATE FUNCTION public.portal_signin_failures(p_email text, p_reasons text[], p_window_seconds integer)
RETURNS TABLE (failures bigint, oldest timestamptz)
LANGUAGE sql STABLE {DEFINER} AS $$
    SELECT count(*), min(e.created_at) FROM public.login_events e
     WHERE lower(e.email) = lower(p_email) AND NOT e.success AND e.reason = ANY (p_reasons)
       AND e.created_at > now() - make_interval(secs => p_window_seconds)
$$""",
    # Knowing the token is the proof: the link's own row, only while it is usable.
    "public.portal_account_token(bytea, account_token_purpose)": f"""
CREATE FUNCTION public.portal_account_token(p_token_hash bytea, p_purpose account_token_purpose)
RETURNS TABLE (id uuid, user_id uuid, new_email varchar)
LANGUAGE sql STABLE {DEFINER} AS $$
    SELECT t.id, t.user_id, t.new_email FROM public.account_tokens t
     WHERE t.token_hash = p_token_hash AND t.purpose = p_purpose AND t.used_at IS NULL AND t.expires_at > now()
$$""",
    # The account a credential id belongs to; the passkey itself is then read as that account.
    "public.portal_passkey_owner(bytea)": f"""
CREATE FUNCTION public.portal_passkey_owner(p_credential_id bytea) RETURNS uuid
LANGUAGE sql STABLE {DEFINER} AS $$
    SELECT a.user_id FROM public.authenticators a WHERE a.credential_id = p_credential_id
$$""",
    # The console's account page: how many sessions are active and when the account was last
    # used; no row unless the transaction's user is an active system admin.
    "public.portal_account_sessions(uuid, integer)": f"""
CREATE FUNCTION public.portal_account_sessions(p_user_id uuid, p_idle_seconds integer)
RETURNS TABLE (active_sessions bigint, last_activity timestamptz)
LANGUAGE sql STABLE {DEFINER} AS $$
    SELECT a.active_sessions, a.last_activity FROM (
        SELECT count(*) FILTER (WHERE s.revoked_at IS NULL AND s.expires_at > now()
                                  AND s.last_seen_at > now() - make_interval(secs => p_idle_seconds)),
               max(s.last_seen_at)
          FROM public.user_sessions s WHERE s.user_id = p_user_id) a (active_sessions, last_activity)
     WHERE EXISTS (SELECT 1 FROM public.users u
                    WHERE u.id = nullif(current_setting('app.user_id', true), '')::uuid
                      AND u.user_type = 'system_admin' AND u.is_active)
$$""",
    # The daily prune (security.prune); it deletes only what is old, never less than a day.
    "public.portal_prune_signin_history(integer, integer)": f"""
CREATE FUNCTION public.portal_prune_signin_history(p_events_days integer, p_sessions_days integer)
RETURNS TABLE (pruned_login_events bigint, pruned_sessions bigint, pruned_challenges bigint)
LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
DECLARE n bigint;
BEGIN
    DELETE FROM public.login_events e
     WHERE e.created_at < now() - make_interval(days => greatest(p_events_days, 1));
    GET DIAGNOSTICS n = ROW_COUNT;
    pruned_login_events := n;
    DELETE FROM public.user_sessions s
     WHERE s.expires_at < now() - make_interval(days => greatest(p_sessions_days, 1))
        OR s.revoked_at < now() - make_interval(days => greatest(p_sessions_days, 1));
    GET DIAGNOSTICS n = ROW_COUNT;
    pruned_sessions := n;
    DELETE FROM public.webauthn_challenges c WHERE c.expires_at < now() - interval '1 hour';
    GET DIAGNOSTICS n = ROW_COUNT;
    pruned_challenges := n;
    RETURN NEXT;
END
$$""",
}

REQUEST_CONTEXT = "public.portal_request_context(bytea, uuid, integer, text)"
# (before, after): the session is read under its user's `user_own` policy, so the user is set
# first and cleared again when no valid session is found.
EDITS = [
    ("BEGIN\n    SELECT u.email,",
     "BEGIN\n    -- The session is read under its user's own policy (user_own, migration 0027): set the\n"
     "    -- claimed user first, and clear it below when no valid session is found.\n"
     "    PERFORM set_config('app.user_id', p_user_id::text, true);\n    SELECT u.email,"),
    ("    IF NOT FOUND THEN\n        RETURN;\n    END IF;\n    PERFORM set_config('app.user_id', p_user_id::text, true);\n",
     "    IF NOT FOUND THEN\n        PERFORM set_config('app.user_id', '', true);\n        RETURN;\n    END IF;\n"),
]


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def _edit_request_context(edits: list[tuple[str, str]]) -> None:
    """CREATE OR REPLACE from the live definition with `edits` applied: same signature and
    result, so its grants stay."""
    definition = op.get_bind().exec_driver_sql(
        f"SELECT pg_get_functiondef('{REQUEST_CONTEXT}'::regprocedure)").scalar()
    for old, new in edits:
        assert definition.count(old) == 1, f"portal_request_context does not read as expected: {old!r}"
        definition = definition.replace(old, new)
    op.execute(definition)


def upgrade(app_role: str = "") -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY user_own ON {table} USING {OWN} WITH CHECK {OWN}")
    for name, (table, body) in EXTRA_POLICIES.items():
        op.execute(f"CREATE POLICY {name} ON {table} {body}")
    _edit_request_context(EDITS)
    role = _app_role(app_role)
    for signature, body in FUNCTIONS.items():
        op.execute(body)
        # Functions are executable by PUBLIC by default; only the serving role needs these.
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        if role:
            op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {role}")


def downgrade(app_role: str = "") -> None:
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    _edit_request_context([(new, old) for old, new in reversed(EDITS)])
    for name, (table, _) in EXTRA_POLICIES.items():
        op.execute(f"DROP POLICY {name} ON {table}")
    for table in TABLES:
        op.execute(f"DROP POLICY user_own ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
