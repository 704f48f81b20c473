"""The sample data's history shows every kind of audit row (but a member leaving and a prune,
which would change the sample or need months) and security event, and its chains verify."""
from __future__ import annotations

import pytest

from conftest import SEED_PASSWORD, login
from portal.auditlog.queries import ACTIONS

NOT_IN_SAMPLE = {"member.leave", "audit.prune",
                 # Described in words by tests/test_trust_defects.py (issue 22); the sample has no API
                 # client, edits no role or settings, and changes no plan.
                 "role.update", "role.delete", "api_client.create", "api_client.rotate", "api_client.disable",
                 "api_client.enable", "api_client.delete", "tenant.update", "tenant.security_policy", "tenant.plan",
                 # Provisioning (tests/test_trust_defects.py, tests/test_scim.py): the sample has no SCIM token.
                 "member.provision", "member.scim_update", "scim_token.create", "scim_token.rotate",
                 "scim_token.revoke", "scim_group.create", "scim_group.update", "scim_group.delete"}


@pytest.fixture
def alice(app):
    client = app.test_client()
    login(client, "alice@acme.com", SEED_PASSWORD)
    return client


@pytest.mark.parametrize("action", sorted(set(ACTIONS) - NOT_IN_SAMPLE))
def test_the_sample_shows_every_kind_of_audit_row(alice, action):
    html = alice.get(f"/t/acme-corp/audit/?action={action}").get_data(as_text=True)
    assert 'class="audit-entry"' in html, f"no sample row for {action}"
    assert ": " + action not in html  # each reads as a sentence, not the fallback


def test_the_sample_history_left_the_sample_as_it_was(alice):
    members = alice.get("/t/acme-corp/members/").get_data(as_text=True)
    assert "Trade Fair Booth" not in alice.get("/t/acme-corp/sites/").get_data(as_text=True)
    assert alice.get("/t/acme-corp/audit/retention").status_code == 200  # Alice is still the owner
    assert "Alex Thompson" in members
    moved = alice.get("/t/acme-corp/audit/?action=device.move").get_data(as_text=True)
    assert "moved ‘HQ Lobby Camera’ from Acme Headquarters to Acme Warehouse" in moved


def test_the_sample_chains_verify(app):
    result = app.test_cli_runner().invoke(args=["audit", "verify", "--tenant", "acme-corp"])
    assert result.exit_code == 0, result.output


def test_the_sample_has_security_events_of_several_kinds(app):
    admin = app.test_client()
    login(admin, "admin@system.local", SEED_PASSWORD)
    for kind in ("signin.failure", "mfa.backup_code_used", "password.reset"):
        # One kind at a time: the sign-ins of the tests themselves would push them past the first page.
        html = admin.get(f"/admin/security-events?q=acme.com&event={kind}").get_data(as_text=True)
        assert f"<code>{kind}</code>" in html
