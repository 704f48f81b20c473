"""Authorization as data: every tenant-scoped route x method x role, from one table.

A route added without an entry here fails `test_every_tenant_route_has_expectations`.
Requests carry a valid CSRF token but no form data: an authorized role gets past
the permission check and is stopped by validation (400/422) or succeeds (200/303);
an unauthorized one gets 403; strangers 404; anonymous users are sent to sign in (302).
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

import pytest

from conftest import Factory, csrf_from, csrf_token, login, without_csrf
from portal.agents.models import AgentTask, Command
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.invitations.models import Invitation
from portal.organization.models import TenantLogo
from portal.sites.models import SiteAssignment
from portal.tenancy.models import Membership, MembershipRole, TenantRole, TenantRolePermission
from portal.tenancy.permissions import Permission

ROLES = ("owner", "admin", "member", "viewer", "nonmember", "anonymous")


def expect(owner, admin, member, viewer):
    return {"owner": owner, "admin": admin, "member": member, "viewer": viewer, "nonmember": 404,
            "anonymous": 302}


READ_ALL = expect(200, 200, 200, 200)
MANAGERS = expect(200, 200, 403, 403)

# (endpoint, method) -> expected status per role, for the role's own tenant.
EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("dashboard.index", "GET"): READ_ALL,
    ("sites.index", "GET"): READ_ALL,
    ("devices.index", "GET"): READ_ALL,
    ("members.index", "GET"): READ_ALL,
    ("members.change_role", "POST"): expect(400, 400, 403, 403),   # no role given
    ("members.further_roles", "POST"): expect(303, 303, 403, 403),  # none given: none held, nothing changes
    ("members.suspend", "POST"): expect(303, 303, 403, 403),
    ("members.reactivate", "POST"): expect(303, 303, 403, 403),
    ("members.remove", "POST"): expect(303, 303, 403, 403),
    ("members.transfer", "POST"): expect(303, 303, 403, 403),      # an admin is refused with a message
    ("members.leave", "POST"): expect(303, 303, 303, 303),         # an owner is refused: last owner
    ("invitations.index", "GET"): MANAGERS,
    ("invitations.create", "POST"): expect(422, 422, 403, 403),    # no emails given
    ("invitations.resend", "POST"): expect(303, 303, 403, 403),
    ("invitations.cancel", "POST"): expect(303, 303, 403, 403),
    # Sites and devices. The matrix's member and viewer are assigned to no site: a site or
    # device page is a 404 for them, as for a stranger (visibility), once the role may act at all.
    ("sites.create", "GET"): MANAGERS,
    ("sites.create", "POST"): expect(422, 422, 403, 403),           # no name given
    ("sites.show", "GET"): expect(200, 200, 404, 404),
    ("sites.edit", "GET"): MANAGERS,
    ("sites.edit", "POST"): expect(422, 422, 403, 403),
    ("sites.archive", "POST"): expect(303, 303, 403, 403),
    ("sites.restore", "POST"): expect(303, 303, 403, 403),          # refused with a message when not archived
    ("sites.delete", "POST"): expect(303, 303, 403, 403),           # refused with a message: it has devices
    ("sites.assign", "POST"): expect(400, 400, 403, 403),           # no member given
    ("sites.unassign", "POST"): expect(400, 400, 403, 403),
    ("sites.member_sites", "GET"): MANAGERS,
    ("devices.export", "GET"): READ_ALL,
    ("devices.count", "GET"): READ_ALL,
    ("devices.create", "GET"): MANAGERS,
    ("devices.create", "POST"): expect(422, 422, 403, 403),
    ("devices.import_csv", "GET"): MANAGERS,
    ("devices.import_csv", "POST"): expect(422, 422, 403, 403),     # no file given
    ("devices.bulk", "POST"): expect(303, 303, 303, 403),           # nothing selected: back to the list; members may change status
    ("devices.show", "GET"): expect(200, 200, 404, 404),
    ("devices.edit", "GET"): MANAGERS,
    ("devices.edit", "POST"): expect(422, 422, 403, 403),
    ("devices.status", "POST"): expect(400, 400, 404, 403),         # no status given; not the member's site
    ("devices.move", "POST"): expect(400, 400, 403, 403),           # no site given
    ("devices.decommission", "POST"): expect(303, 303, 403, 403),
    ("roles.index", "GET"): MANAGERS,
    ("roles.create", "GET"): MANAGERS,
    ("roles.create", "POST"): expect(422, 422, 403, 403),           # no name given
    ("roles.edit", "GET"): MANAGERS,
    ("roles.edit", "POST"): expect(422, 422, 403, 403),
    ("roles.deletion_page", "GET"): MANAGERS,
    ("roles.delete", "POST"): expect(303, 303, 403, 403),           # nobody holds it: no fallback needed
    ("settings.index", "GET"): expect(303, 403, 403, 403),           # owners only; to the first section
    ("settings.general", "GET"): expect(200, 403, 403, 403),
    ("settings.general", "POST"): expect(422, 403, 403, 403),        # no name given
    ("settings.branding", "GET"): expect(200, 403, 403, 403),
    ("settings.security", "GET"): expect(200, 403, 403, 403),
    ("settings.security", "POST"): expect(303, 403, 403, 403),       # an empty policy is valid
    ("settings.plan", "GET"): expect(200, 403, 403, 403),
    ("settings.danger", "GET"): expect(200, 403, 403, 403),
    ("settings.delete", "POST"): expect(422, 403, 403, 403),         # nothing typed
    ("settings.cancel_deletion", "POST"): expect(303, 303, 303, 303),  # refused with a message: nothing to cancel
    ("settings.dismiss_onboarding", "POST"): expect(303, 403, 403, 403),
    ("settings.export", "GET"): expect(200, 403, 403, 403),
    ("settings.export", "POST"): expect(303, 403, 403, 403),
    ("settings.download", "GET"): expect(410, 403, 403, 403),         # not a valid link
    ("settings.logo", "POST"): expect(422, 403, 403, 403),             # no file given
    ("settings.remove_logo", "POST"): expect(303, 403, 403, 403),
    ("settings.accent", "POST"): expect(422, 403, 403, 403),           # no colour given
    ("settings.reset_accent", "POST"): expect(303, 403, 403, 403),
    # Branding in the header: every member (both tenants have a logo; the foreign one's is a 404).
    ("branding.logo", "GET"): READ_ALL,
    ("branding.stylesheet", "GET"): READ_ALL,
    # The audit trail (issue 12): owners and admins (audit:view).
    ("audit.index", "GET"): MANAGERS,
    ("audit.member_signins", "GET"): MANAGERS,
    ("audit.export_csv", "GET"): MANAGERS,
    ("audit.export_jsonl", "GET"): MANAGERS,
    ("audit.retention_settings", "GET"): expect(200, 403, 403, 403),   # owners only (audit:manage)
    ("audit.retention_settings", "POST"): expect(422, 403, 403, 403),  # no days given
    # API clients (issue 15): owners and admins (api:manage).
    ("api_clients.index", "GET"): MANAGERS,
    ("api_clients.create", "GET"): MANAGERS,
    ("api_clients.create", "POST"): expect(422, 422, 403, 403),       # no name given
    ("api_clients.rotate", "POST"): expect(303, 303, 403, 403),       # to the new secret, shown once
    ("api_clients.secret", "GET"): MANAGERS,                          # nothing kept: "shown once"
    ("api_clients.disable", "POST"): expect(303, 303, 403, 403),
    ("api_clients.enable", "POST"): expect(303, 303, 403, 403),       # refused with a message: not disabled
    ("api_clients.delete", "POST"): expect(303, 303, 403, 403),
    ("api_clients.apps", "GET"): MANAGERS,
    ("api_clients.create_app", "GET"): MANAGERS,
    ("api_clients.create_app", "POST"): expect(422, 422, 403, 403),   # no name given
    ("api_clients.app_created", "GET"): MANAGERS,                     # the client id; no secret kept
    ("api_clients.delete_app", "POST"): expect(303, 303, 403, 403),
    ("api_clients.revoke_grant", "POST"): expect(303, 303, 403, 403),
    ("provisioning.index", "GET"): expect(200, 403, 403, 403),         # owners only (sso:manage)
    ("provisioning.create", "POST"): expect(422, 403, 403, 403),       # no name given
    ("provisioning.rotate", "POST"): expect(303, 403, 403, 403),       # to the section, the new token shown once
    ("provisioning.revoke", "POST"): expect(303, 403, 403, 403),
    # Analytics (issue 15): owners and admins chart events (analytics:view) and record one (events:write).
    ("analytics.index", "GET"): MANAGERS,
    ("analytics.record_event", "POST"): expect(422, 422, 403, 403),    # no type given
    # Tasks (issue 14). The matrix's task is at the tenant's site, which the matrix's member and
    # viewer do not see (404 once the role may act at all, as for devices).
    ("tasks.index", "GET"): READ_ALL,
    ("tasks.board", "GET"): READ_ALL,
    ("tasks.count", "GET"): READ_ALL,
    ("tasks.create", "GET"): expect(200, 200, 200, 403),
    ("tasks.create", "POST"): expect(422, 422, 422, 403),           # no title given
    ("tasks.show", "GET"): expect(200, 200, 404, 404),
    ("tasks.edit", "GET"): expect(200, 200, 404, 403),
    ("tasks.edit", "POST"): expect(422, 422, 404, 403),
    ("tasks.status", "POST"): expect(400, 400, 404, 403),           # no status given
    ("tasks.comment", "POST"): expect(422, 422, 404, 403),          # no comment given
    ("tasks.bulk_status", "POST"): expect(303, 303, 303, 403),      # nothing selected: back to the list
    ("tasks.bulk_assign", "POST"): expect(303, 303, 303, 403),
    # Device agents (issue 15): agents:run for owners, admins and members (at their sites: the
    # matrix's member has none, so the device is a 404); agents:manage for owners and admins.
    ("agents.tasks", "GET"): expect(200, 200, 404, 403),
    ("agents.queue", "POST"): expect(422, 422, 404, 403),            # no command given
    ("agents.cancel", "POST"): expect(303, 303, 404, 403),
    ("agents.issue_credential", "POST"): expect(303, 303, 403, 403),  # to the new secret, shown once
    ("agents.credential_secret", "GET"): expect(200, 200, 403, 403),  # nothing kept: "shown once"
    ("agents.revoke_credential", "POST"): expect(303, 303, 403, 403),
    ("agents.queue_selection", "POST"): expect(303, 303, 303, 403),  # nothing selected: back to the list
    # The command palette's search (issue 22): every member; what it finds follows each kind's rules.
    ("search.index", "GET"): READ_ALL,
    # Organizations' single sign-on (issue 25): owners only (sso:manage).
    ("sso_settings.index", "GET"): expect(200, 403, 403, 403),
    ("sso_settings.create", "GET"): expect(200, 403, 403, 403),
    ("sso_settings.create", "POST"): expect(422, 403, 403, 403),         # no name given
    ("sso_settings.show", "GET"): expect(200, 403, 403, 403),
    ("sso_settings.show", "POST"): expect(422, 403, 403, 403),           # no name given
    ("sso_settings.enable", "POST"): expect(303, 403, 403, 403),
    ("sso_settings.disable", "POST"): expect(303, 403, 403, 403),        # refused with a message: not enabled
    ("sso_settings.delete", "POST"): expect(303, 403, 403, 403),
    ("sso_settings.test", "POST"): expect(303, 403, 403, 403),           # the provider is unreachable: a message
    ("sso_settings.add_mapping", "POST"): expect(422, 403, 403, 403),    # no group given
    ("sso_settings.delete_mapping", "POST"): expect(303, 403, 403, 403),
    ("sso_settings.claim_domain", "POST"): expect(422, 403, 403, 403),   # no domain given
    ("sso_settings.check_domain", "POST"): expect(303, 403, 403, 403),   # not verified: a message
    ("sso_settings.require_sso", "POST"): expect(303, 403, 403, 403),    # nothing to change
    ("sso_settings.delete_domain", "POST"): expect(303, 403, 403, 403),
    # Integrations (issue 23): integrations:view and integrations:manage, owners and admins. The
    # matrix's integration is an enabled webhook endpoint.
    ("integrations.index", "GET"): MANAGERS,
    ("integrations.create", "GET"): MANAGERS,
    ("integrations.create", "POST"): expect(422, 422, 403, 403),         # no name given
    ("integrations.show", "GET"): MANAGERS,
    ("integrations.edit", "GET"): MANAGERS,
    ("integrations.edit", "POST"): expect(422, 422, 403, 403),           # no name given
    ("integrations.secret", "GET"): MANAGERS,                            # nothing kept: "shown once"
    ("integrations.credentials", "POST"): expect(303, 303, 403, 403),    # to the new signing secret, shown once
    ("integrations.enable", "POST"): expect(303, 303, 403, 403),         # refused with a message: enabled
    ("integrations.disable", "POST"): expect(303, 303, 403, 403),
    ("integrations.sync", "POST"): expect(303, 303, 403, 403),           # refused with a message: not a source
    ("integrations.test", "POST"): expect(303, 303, 403, 403),
    ("integrations.replay", "POST"): expect(303, 303, 403, 403),         # refused with a message: not failed
    ("integrations.delete", "POST"): expect(303, 303, 403, 403),
}


class Context:
    """What URL parameters are made from: the tenant under test, fresh rows per request."""

    def __init__(self, app, factory: Factory, tenant: dict):
        self.app, self.factory, self.tenant = app, factory, tenant

    def new_member(self, role: str = "viewer"):
        user = self.factory.user(name="matrix target")
        with self.app.app_context(), tenant_scope(db.session, self.tenant["id"], actor="test:setup"):
            db.session.add(Membership(tenant_id=self.tenant["id"], user_id=user.id, role=MembershipRole(role)))
            db.session.commit()
        return user.id

    def new_role(self, permissions=(Permission.TENANT_VIEW,)) -> str:
        with self.app.app_context(), tenant_scope(db.session, self.tenant["id"], actor="test:setup"):
            role = TenantRole(tenant_id=self.tenant["id"], name=f"matrix role {secrets.token_hex(4)}")
            db.session.add(role)
            db.session.flush()
            role.grants = [TenantRolePermission(tenant_id=role.tenant_id, role_id=role.id, permission=p.value)
                           for p in permissions]
            db.session.commit()
            return str(role.id)

    def new_api_client(self):
        from portal.api.models import ApiClient
        with self.app.app_context(), tenant_scope(db.session, self.tenant["id"], actor="test:setup"):
            client = ApiClient(tenant_id=self.tenant["id"], name="matrix client", scopes=["devices:view"],
                               secret_hash=hashlib.sha256(secrets.token_bytes(16)).digest())
            db.session.add(client)
            db.session.commit()
            return client.id

    def new_oauth_app(self):
        from portal.api.models import ApiClient
        with self.app.app_context(), tenant_scope(db.session, self.tenant["id"], actor="test:setup"):
            client = ApiClient(tenant_id=self.tenant["id"], name="matrix app", scopes=["devices:view"], kind="app",
                               is_public=True, redirect_uris=["http://127.0.0.1/cb"])
            db.session.add(client)
            db.session.commit()
            return client.id

    def new_oauth_grant(self):
        from portal.api.models import OAuthGrant
        app_id = self.new_oauth_app()
        user_id = self.new_member()
        with self.app.app_context(), tenant_scope(db.session, self.tenant["id"], actor="test:setup"):
            grant = OAuthGrant(tenant_id=self.tenant["id"], client_ref=app_id, user_id=user_id, scopes=["devices:view"])
            db.session.add(grant)
            db.session.commit()
            return grant.id

    def new_scim_token(self):
        from portal.scim.models import ScimToken
        with self.app.app_context(), tenant_scope(db.session, self.tenant["id"], actor="test:setup"):
            token = ScimToken(tenant_id=self.tenant["id"], name="matrix token",
                              token_hash=hashlib.sha256(secrets.token_bytes(16)).digest())
            db.session.add(token)
            db.session.commit()
            return token.id

    def new_task(self):
        from portal.tasks.models import Task
        with self.app.app_context(), tenant_scope(db.session, self.tenant["id"], actor="test:setup"):
            task = Task(tenant_id=self.tenant["id"], title="matrix task", site_id=self.tenant["sites"][0])
            db.session.add(task)
            db.session.commit()
            return task.id

    def new_agent_task(self):
        with self.app.app_context(), tenant_scope(db.session, self.tenant["id"], actor="test:setup"):
            now = datetime.now(timezone.utc)
            task = AgentTask(tenant_id=self.tenant["id"], device_id=self.tenant["devices"][0], command=Command.REBOOT,
                             created_at=now, expires_at=now + timedelta(hours=1))
            db.session.add(task)
            db.session.commit()
            return task.id

    def new_sso_connection(self):
        from portal.sso.models import SsoConnection
        with self.app.app_context(), tenant_scope(db.session, self.tenant["id"], actor="test:setup"):
            # An issuer nothing answers at: "Test connection" ends with a message, quickly.
            row = SsoConnection(tenant_id=self.tenant["id"], name="matrix idp", issuer="http://127.0.0.1:9",
                                client_id="portal")
            db.session.add(row)
            db.session.commit()
            return row.id

    def new_sso_mapping(self):
        from portal.sso.models import SsoGroupMapping
        connection_id = self.new_sso_connection()
        with self.app.app_context(), tenant_scope(db.session, self.tenant["id"], actor="test:setup"):
            row = SsoGroupMapping(tenant_id=self.tenant["id"], connection_id=connection_id, group_name="/matrix",
                                  role_key="viewer")
            db.session.add(row)
            db.session.commit()
            return row.id

    def new_sso_domain(self):
        from portal.sso.models import SsoDomain
        with self.app.app_context(), tenant_scope(db.session, self.tenant["id"], actor="test:setup"):
            row = SsoDomain(tenant_id=self.tenant["id"], domain=f"matrix-{secrets.token_hex(4)}.invalid", token="t")
            db.session.add(row)
            db.session.commit()
            return row.id
    def new_integration(self, with_entry: bool = False):
        """An enabled webhook endpoint (and, for routes that name one, a delivery in its log)."""
        from portal.integrations.models import Integration, LogEntry
        from portal.integrations.services import seal_credentials
        with self.app.app_context(), tenant_scope(db.session, self.tenant["id"], actor="test:setup"):
            integration = Integration(tenant_id=self.tenant["id"], name="matrix webhook", provider="webhook",
                                      config={"url": "http://127.0.0.1:9/hook", "events": ["task.created"]},
                                      enabled=True)
            db.session.add(integration)
            db.session.flush()
            seal_credentials(integration, {"signing_secret": "whsec_" + "A" * 43 + "="})
            ids = integration.id
            if with_entry:
                entry = LogEntry(tenant_id=self.tenant["id"], integration_id=integration.id, kind="delivery",
                                 event_type="task.created", payload={}, state="succeeded", request={}, response={})
                db.session.add(entry)
                db.session.flush()
                self.entry_integration = integration.id
                ids = entry.id
            db.session.commit()
            return ids

    def integration_for_entry(self):
        # The route names an entry too: its integration, made with it (see _url's order).
        return self.__dict__.pop("entry_integration", None) or self.new_integration()

    def new_invitation(self):
        with self.app.app_context(), tenant_scope(db.session, self.tenant["id"], actor="test:setup"):
            inv = Invitation(tenant_id=self.tenant["id"], role=MembershipRole.MEMBER, email=f"matrix-{secrets.token_hex(4)}@example.com",
                             token_hash=hashlib.sha256(secrets.token_bytes(16)).digest(),
                             expires_at=datetime.now(timezone.utc) + timedelta(days=1),
                             last_sent_at=datetime.now(timezone.utc) - timedelta(hours=1))
            db.session.add(inv)
            db.session.commit()
            return inv.id


# URL parameter (other than the tenant slug) -> a value made from the Context.
PARAMS = {
    "user_id": lambda ctx: ctx.new_member(),
    "invitation_id": lambda ctx: ctx.new_invitation(),
    "site_id": lambda ctx: ctx.tenant["sites"][0],
    "device_id": lambda ctx: ctx.tenant["devices"][0],
    "role_key": lambda ctx: ctx.new_role(),
    "token": lambda ctx: "not-a-valid-export-link",
    "client_id": lambda ctx: ctx.new_api_client(),
    "app_id": lambda ctx: ctx.new_oauth_app(),
    "grant_id": lambda ctx: ctx.new_oauth_grant(),
    "token_id": lambda ctx: ctx.new_scim_token(),
    "task_id": lambda ctx: ctx.new_task(),
    "agent_task_id": lambda ctx: ctx.new_agent_task(),
    "connection_id": lambda ctx: ctx.new_sso_connection(),
    "mapping_id": lambda ctx: ctx.new_sso_mapping(),
    "domain_id": lambda ctx: ctx.new_sso_domain(),
    "provider": lambda ctx: "webhook",
    "entry_id": lambda ctx: ctx.new_integration(with_entry=True),
    "integration_id": lambda ctx: ctx.integration_for_entry(),
}


def tenant_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/t/<tenant_slug>"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def test_every_tenant_route_has_expectations(app):
    missing = [(r.endpoint, m) for r, m in tenant_rules(app) if (r.endpoint, m) not in EXPECTED]
    assert missing == [], f"add these routes to the authorization matrix: {missing}"
    stale = set(EXPECTED) - {(r.endpoint, m) for r, m in tenant_rules(app)}
    assert not stale, f"matrix entries for routes that no longer exist: {stale}"
    unparametrised = {a for r, _ in tenant_rules(app) for a in r.arguments - {"tenant_slug"}} - set(PARAMS)
    assert not unparametrised, f"add PARAMS for: {unparametrised}"


def _give_logo(app, tenant_id):
    png = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
           b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        db.session.add(TenantLogo(tenant_id=tenant_id, media_type="image/png", content=png, sha256="0" * 64,
                                  width=1, height=1))
        db.session.commit()


@pytest.fixture
def matrix_world(app, password_hash):
    """Fresh per role: the requests change memberships and invitations."""
    factory = Factory(app, password_hash)
    users = {role: factory.user(name=f"matrix {role}") for role in ("owner", "admin", "member", "viewer")}
    users["nonmember"] = factory.user(name="matrix outsider")
    home = factory.tenant(members={r: users[r] for r in ("owner", "admin", "member", "viewer")})
    foreign = factory.tenant(members={"owner": factory.user(name="foreign owner")})
    for tenant in (home, foreign):
        _give_logo(app, tenant["id"])
    return {"users": users, "home": Context(app, factory, home), "foreign": Context(app, factory, foreign)}


def _url(app, rule, ctx: Context) -> str:
    values = {"tenant_slug": ctx.tenant["slug"]}
    for arg in sorted(rule.arguments - {"tenant_slug"}, key=lambda a: a != "entry_id"):  # an entry makes its integration
        values[arg] = PARAMS[arg](ctx)
    with app.test_request_context():
        return app.url_for(rule.endpoint, **values)


def _request(client, method, url, token):
    if method == "GET":
        return client.get(url)
    return client.open(url, method=method, data={"csrf_token": token})


def _order(rule_method):
    # Handing ownership over makes the owner an admin, and leaving ends the membership: ask them last.
    rule, method = rule_method
    return (rule.endpoint in ("members.transfer", "members.leave"), rule.endpoint == "members.leave", rule.rule,
            method)


@pytest.mark.parametrize("role", ROLES)
def test_matrix(app, matrix_world, role):
    client = app.test_client()
    if role == "anonymous":  # a visitor's session has a token too: the sign-in wall must hold anyway
        token = csrf_from(client.get("/login").get_data(as_text=True))
    else:
        login(client, matrix_world["users"][role].email)
        token = csrf_token(client)
    failures = []
    for rule, method in sorted(tenant_rules(app), key=_order):
        expected = EXPECTED[(rule.endpoint, method)][role]
        # Every role of the home tenant is a stranger to the foreign tenant: 404, or sign-in.
        foreign_expected = 302 if role == "anonymous" else 404
        got = _request(client, method, _url(app, rule, matrix_world["foreign"]), token).status_code
        if got != foreign_expected:
            failures.append(f"{method} {rule.rule} foreign tenant: expected {foreign_expected}, got {got}")
        got = _request(client, method, _url(app, rule, matrix_world["home"]), token).status_code
        if got != expected:
            failures.append(f"{method} {rule.rule} own tenant: expected {expected}, got {got}")
    assert failures == []


def test_unknown_slug_and_foreign_tenant_are_indistinguishable(app, matrix_world):
    client = app.test_client()
    login(client, matrix_world["users"]["owner"].email)
    foreign = client.get(f"/t/{matrix_world['foreign'].tenant['slug']}/")
    unknown = client.get("/t/no-such-tenant-anywhere/")
    assert foreign.status_code == unknown.status_code == 404
    assert without_csrf(foreign.get_data(as_text=True)) == without_csrf(unknown.get_data(as_text=True))


# Permissions that widen what other routes show rather than guarding a route of their own.
WIDENING = {
    Permission.SITES_SEE_ALL: "every site and its devices on the site and device pages",
}


def _needed(app, rule, method) -> Permission:
    """The permission a route's view requires for this method (the `requires` decorator)."""
    view = app.view_functions[rule.endpoint]
    return view.post_permission if method == "POST" else view.permission


@pytest.mark.parametrize("permission", list(Permission))
def test_custom_role_matrix(app, matrix_world, permission):
    """A custom role holding only `permission` reaches exactly the routes that need it, and gets
    403 everywhere else (404 in the foreign tenant, as always). The holder is assigned to the
    tenant's site, so that site visibility does not hide what the permission opens."""
    home = matrix_world["home"]
    user = home.factory.user(name=f"matrix {permission.value}")
    role_id = home.new_role([permission])
    with app.app_context(), tenant_scope(db.session, home.tenant["id"], actor="test:setup"):
        db.session.add(Membership(tenant_id=home.tenant["id"], user_id=user.id, custom_role_id=role_id))
        db.session.flush()
        db.session.add(SiteAssignment(tenant_id=home.tenant["id"], site_id=home.tenant["sites"][0], user_id=user.id))
        db.session.commit()
    client = app.test_client()
    login(client, user.email)
    token = csrf_token(client)
    failures, reached = [], []
    for rule, method in sorted(tenant_rules(app), key=_order):
        got = _request(client, method, _url(app, rule, matrix_world["foreign"]), token).status_code
        if got != 404:
            failures.append(f"{method} {rule.rule} foreign tenant: expected 404, got {got}")
        got = _request(client, method, _url(app, rule, home), token).status_code
        if _needed(app, rule, method) == permission:
            reached.append((rule.endpoint, method))
            if got in (302, 403, 404) or got >= 500:
                failures.append(f"{method} {rule.rule}: needs {permission}, which the role holds, but got {got}")
        elif got != 403:
            failures.append(f"{method} {rule.rule}: needs {_needed(app, rule, method)}, expected 403, got {got}")
    assert failures == []
    # Every permission of the catalogue opens something, or it would be a permission in name only.
    assert reached or permission in WIDENING
