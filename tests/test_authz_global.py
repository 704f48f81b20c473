"""Authorization as data for every route outside /t/<slug>: anonymous, a signed-in user, a system admin.

A route added without an entry here fails `test_every_global_route_has_expectations`.
Requests carry a valid CSRF token and no form data.
"""
from __future__ import annotations

import uuid

import pytest

from conftest import csrf_from, csrf_token, login
from portal.accounts.models import UserType

ROLES = ("anonymous", "user", "sysadmin")


def each(anonymous, user, sysadmin=None):
    return {"anonymous": anonymous, "user": user, "sysadmin": user if sysadmin is None else sysadmin}


EXPECTED: dict[tuple[str, str], dict[str, int | tuple[int, ...]]] = {
    ("accounts.root", "GET"): each(303, 303),
    ("accounts.login", "GET"): each(200, 303),
    ("accounts.login", "POST"): each(400, 303),
    # Organizations' single sign-on (issue 25): discovery answers anyone; the start page asks for an
    # email (signed-in people go home); a callback without a started attempt goes back to /login.
    ("sso_org.discover", "GET"): each(200, 200),
    ("sso_org.start", "GET"): each(200, 303),
    ("sso_org.callback", "GET"): each(303, 303),
    ("accounts.second_factor", "GET"): each(303, 303),
    ("accounts.deletion_pending", "GET"): each(303, 303),   # nothing pending: sign in again
    ("accounts.deletion_pending", "POST"): each(303, 303),
    ("accounts.second_factor", "POST"): each(303, 303),
    ("accounts.logout", "POST"): each(303, 303),
    ("accounts_reset.forgot", "GET"): each(200, 200),
    ("accounts_reset.forgot", "POST"): each(400, 400),
    ("accounts_reset.reset", "GET"): each(410, 410),
    ("accounts_reset.reset", "POST"): each(410, 410),
    ("profile.index", "GET"): each(302, 303),  # to the first section
    ("profile.profile", "GET"): each(302, 200),
    ("profile.security", "GET"): each(302, 200),
    ("profile.sessions", "GET"): each(302, 200),
    ("profile.activity", "GET"): each(302, 200),
    ("profile.notifications", "GET"): each(302, 200),
    ("profile.confirm", "GET"): each(302, 200),
    ("profile.confirm", "POST"): each(302, 400),
    ("profile.change_name", "POST"): each(302, 422),
    ("profile.upload_avatar", "POST"): each(302, 422),    # no file
    ("profile.remove_avatar", "POST"): each(302, 303),
    ("profile.avatar", "GET"): each(302, 404),            # none uploaded
    ("profile.change_locale", "POST"): each(302, 303),    # nothing chosen: the browser's
    ("profile.data", "GET"): each(302, 200),
    ("profile.request_export", "POST"): each(302, 303),
    ("profile.download_export", "GET"): each(302, 410),
    ("profile.delete_account", "POST"): each(302, 400),   # without the dialog's confirmation
    ("profile.change_email", "POST"): each(302, 422),
    ("profile.change_password", "POST"): each(302, 422),
    ("profile.timezone", "GET"): each(302, 200),
    ("profile.timezone", "POST"): each(302, 303),  # no data: back to the browser's zone
    ("profile.verify_email", "GET"): each(302, 410),
    ("profile.verify_email", "POST"): each(302, 303),
    ("profile.two_factor", "GET"): each(302, 200),
    ("profile.enable_two_factor", "POST"): each(302, 422),  # after the GET: a pending secret, no code
    ("profile.regenerate_backup_codes", "POST"): each(302, 303),
    ("profile.backup_codes", "GET"): each(302, 200),  # nothing kept: "shown once"
    ("profile.disable_two_factor", "POST"): each(302, 303),
    ("profile.revoke_session", "POST"): each(302, 303),
    ("profile.revoke_other_sessions", "POST"): each(302, 303),
    # Passkeys (issue 24). Empty forms: told so by a flash, nothing changes.
    ("passkeys.registration_options", "POST"): each(302, 200),  # signed in moments ago: fresh enough
    ("passkeys.add", "POST"): each(302, 303),
    ("passkeys.rename", "POST"): each(302, 303),
    ("passkeys.remove", "POST"): each(302, 303),                # not theirs (or none)
    ("passkeys.reauth_options", "POST"): each(302, 409),        # no passkey to confirm with
    ("passkeys.reauth", "POST"): each(302, 303),
    ("passkeys.signin_options", "POST"): each(200, 200),
    ("passkeys.signin", "POST"): each(303, 303),
    ("passkeys.second_factor_options", "POST"): each(401, 401),  # no password step pending
    ("passkeys.second_factor", "POST"): each(303, 303),
    ("switcher.index", "GET"): each(302, 200),
    ("switcher.switch", "POST"): each(302, 404),
    ("mytasks.index", "GET"): each(302, 200),
    ("admin.tenants", "GET"): each(404, 404, 200),
    ("admin.new_tenant", "GET"): each(404, 404, 200),
    ("admin.new_tenant", "POST"): each(404, 404, 422),       # nothing given
    ("admin.tenant", "GET"): each(404, 404, 200),
    ("admin.tenant_status", "POST"): each(404, 404, 422),    # suspending needs a reason
    ("admin.tenant_plan", "POST"): each(404, 404, 422),
    ("admin.tenant_features", "POST"): each(404, 404, 303),  # none chosen: the plan's features only
    ("admin.users", "GET"): each(404, 404, 200),
    ("admin.user", "GET"): each(404, 404, 404),              # an unknown user
    ("admin.user_status", "POST"): each(404, 404, 404),       # an unknown user
    ("admin.send_reset", "POST"): each(404, 404, 404),
    ("admin.security_events", "GET"): each(404, 404, 200),
    ("admin.jobs", "GET"): each(404, 404, 200),
    ("admin.retry_job", "POST"): each(404, 404, 303),  # no such failed job: told so, nothing changes
    ("accept.show", "GET"): each(410, 410),
    ("accept.respond", "POST"): each(410, 410),
    ("devmail.index", "GET"): each(200, 200),   # 404 in production (tests/test_invitations.py)
    ("devmail.show", "GET"): each(404, 404),
    ("health.healthz", "GET"): each(200, 200),
    ("health.readyz", "GET"): each((200, 503), (200, 503)),  # public; 503 while no worker was seen (test_metrics.py)
    ("metrics", "GET"): each(404, 404),  # only with METRICS_TOKEN set, and its bearer token (test_metrics.py)
    ("notifications.index", "GET"): each(302, 200),
    ("notifications.count", "GET"): each(302, 200),
    ("notifications.latest", "GET"): each(302, 200),
    ("notifications.open_", "GET"): each(302, 404),         # not theirs (or none): not found
    ("notifications.read", "POST"): each(302, 404),         # not theirs (or none): not found
    ("notifications.read_all", "POST"): each(302, 303),
    ("notifications.preferences", "POST"): each(302, 303),  # nothing chosen: told so, nothing changes
    ("notifications.unsubscribe", "GET"): each(404, 404),   # a token it did not sign
    ("notifications.unsubscribe", "POST"): each(404, 404),
    # Machines (issue 15): no browser session opens the API, whoever is signed in (bearer tokens only).
    ("api.openapi_document", "GET"): each(200, 200),
    **{(endpoint, method): each(401, 401) for endpoint, method in (
        ("api.list_sites", "GET"), ("api.create_site", "POST"), ("api.get_site", "GET"),
        ("api.update_site", "PATCH"), ("api.delete_site", "DELETE"), ("api.archive_site", "POST"),
        ("api.restore_site", "POST"), ("api.list_devices", "GET"), ("api.create_device", "POST"),
        ("api.get_device", "GET"), ("api.update_device", "PATCH"), ("api.decommission_device", "POST"),
        ("api.bulk_status", "POST"), ("api.record_events", "POST"), ("agent_api.heartbeat", "POST"),
        ("agent_api.next_task", "GET"), ("agent_api.result", "POST"))},
    # SCIM (issue 25): only an organization's SCIM token opens /scim/v2, never a browser session.
    **{(f"scim.{endpoint}", method): each(401, 401) for endpoint, method in (
        ("service_provider_config", "GET"), ("resource_types", "GET"), ("resource_type", "GET"), ("schemas", "GET"),
        ("schema", "GET"), ("list_users", "GET"), ("create_user", "POST"), ("get_user", "GET"),
        ("replace_user", "PUT"), ("patch_user", "PATCH"), ("delete_user", "DELETE"), ("list_groups", "GET"),
        ("create_group", "POST"), ("get_group", "GET"), ("replace_group", "PUT"), ("patch_group", "PATCH"),
        ("delete_group", "DELETE"))},
    ("oauth.token", "POST"): each(400, 400),       # no grant_type (checked before the client)
    ("oauth.revoke", "POST"): each(401, 401),
    ("oauth.introspect", "POST"): each(401, 401),
    # Connected apps (issue 24): the metadata is public; the consent page and the account's list
    # need a signed-in person (no client_id: the request is not valid, and the person is told).
    ("oauth_metadata.metadata", "GET"): each(200, 200),
    ("connected_apps.authorize", "GET"): each(302, 400),
    ("connected_apps.authorize", "POST"): each(303, 400),
    ("connected_apps.connected_apps", "GET"): each(302, 200),
    ("connected_apps.revoke", "POST"): each(302, 303),             # not theirs: "had already lost its access"
    # Integrations (issue 23): the JSON API wants a bearer token; an inbound URL a signed batch of
    # an integration that exists (an unknown id is a 404 whoever asks).
    ("inbound.receive", "POST"): each(404, 404),
    **{(f"integrations_api.{name}", method): each(401, 401) for name, method in (
        ("list_integrations", "GET"), ("create_integration", "POST"), ("get_integration", "GET"),
        ("delete_integration", "DELETE"), ("update_integration", "PATCH"), ("replace_credentials", "POST"), ("enable_integration", "POST"), ("disable_integration", "POST"),
        ("test_integration", "POST"), ("sync_integration", "POST"), ("integration_log", "GET"),
        ("replay_delivery", "POST"))},
    # Members and roles in the API (issue 26): a bearer token or nothing.
    **{(f"members_api.{name}", method): each(401, 401) for name, method in (
        ("list_roles", "GET"), ("list_members", "GET"), ("get_member", "GET"), ("update_member", "PATCH"))},
    ("static", "GET"): each(200, 200),
    ("favicon", "GET"): each(200, 200),
}

PARAMS = {
    "token": lambda: "not-a-real-token",
    "session_id": lambda: uuid.uuid4(),
    "passkey_id": lambda: uuid.uuid4(),
    "grant_id": lambda: uuid.uuid4(),
    "user_id": lambda: uuid.uuid4(),
    "message_id": lambda: uuid.uuid4(),
    "filename": lambda: "portal.css",
    "slug": lambda: "acme-corp",
    "job_id": lambda: 2 ** 62,
    "notification_id": lambda: uuid.uuid4(),
    "site_id": lambda: uuid.uuid4(),
    "device_id": lambda: uuid.uuid4(),
    "task_id": lambda: uuid.uuid4(),
    "integration_id": lambda: uuid.uuid4(),
    "entry_id": lambda: uuid.uuid4(),
    "name": lambda: "User",
    "schema_id": lambda: "urn:ietf:params:scim:schemas:core:2.0:User",
    "scim_id": lambda: uuid.uuid4(),
    "group_id": lambda: uuid.uuid4(),
}


def global_rules(app):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/t/<tenant_slug>"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def test_every_global_route_has_expectations(app):
    missing = [(r.endpoint, m) for r, m in global_rules(app) if (r.endpoint, m) not in EXPECTED]
    assert missing == [], f"add these routes to the global authorization matrix: {missing}"
    stale = set(EXPECTED) - {(r.endpoint, m) for r, m in global_rules(app)}
    assert not stale, f"entries for routes that no longer exist: {stale}"


@pytest.mark.parametrize("role", ROLES)
def test_global_matrix(app, factory, role):
    client = app.test_client()
    if role == "anonymous":
        token = csrf_from(client.get("/login").get_data(as_text=True))
    else:
        fields = {"user_type": UserType.SYSTEM_ADMIN} if role == "sysadmin" else {}
        user = factory.user(**fields)
        if role == "user":
            factory.tenant(members={"member": user}, sites=0)
        login(client, user.email)
        token = csrf_token(client)
    failures = []
    # Signing out ends the session: ask it last.
    for rule, method in sorted(global_rules(app), key=lambda rm: (rm[0].endpoint == "accounts.logout", rm[0].rule)):
        values = {arg: PARAMS[arg]() for arg in rule.arguments}
        with app.test_request_context():
            url = app.url_for(rule.endpoint, **values)
        response = client.get(url) if method == "GET" else client.open(url, method=method,
                                                                       data={"csrf_token": token})
        expected = EXPECTED[(rule.endpoint, method)][role]
        if response.status_code not in (expected if isinstance(expected, tuple) else (expected,)):
            failures.append(f"{method} {rule.rule}: expected {expected}, got {response.status_code}")
    assert failures == []
