"""Seed 003's RLS test script (`002_test_rls.sql`), as its README writes it, against the sample
data, as the serving role (no superuser, no BYPASSRLS), with only what seed 003 sets:

- Alice sees only Acme Corp data
- Charlie sees only Tech Startup data
- Bob cannot see Charlie's data (cross-org isolation)
- Users see only their own sessions
- Permission-based updates work correctly
- `user_has_permission(diana, healthcare, 'agents', 'run')`, as the sample roles say

Seed 003 sets `app.current_user_id`; the portal's name for it is `app.user_id`, set per transaction with set_config(..., true). Its tables are the
portal's: organizations = `tenants`, organization_members = `user_tenant_associations`,
sessions = `user_sessions`, user_roles, agent_tasks, agent_results, audit_logs (and the sites,
devices and tasks seed 003 does not have)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from conftest import SEED_PASSWORD, login

# Seed 003's tables with a tenant, as the portal names them; and the portal's own, which answer
# only inside a tenant (with only the user set: nothing).
TABLES = ["user_tenant_associations", "user_roles", "agent_tasks", "agent_results", "audit_logs"]
TENANT_ONLY = ["sites", "devices", "tasks", "tenant_invitations", "api_clients", "integrations"]


@pytest.fixture(scope="module")
def serving(db_urls):
    engine = sa.create_engine(db_urls["app"], poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def sample(app):
    """Ids of the sample's people and organizations (read as the owner, before RLS matters)."""
    with app.app_context():
        from portal.extensions import db
        people = dict(db.session.execute(sa.text("SELECT email, id FROM users")).all())
        orgs = dict(db.session.execute(sa.text("SELECT slug, id FROM tenants")).all())
    return {"people": people, "orgs": orgs}


def as_user(conn, user_id):
    """What seed 003's script does (it sets the current user), as the portal does it: for this
    transaction only, set_config(..., true), so a pooled connection never carries it on."""
    conn.execute(sa.text("SELECT set_config('app.user_id', :u, true)"), {"u": str(user_id)})


def tenants_seen(conn) -> dict[str, set]:
    return {table: set(conn.execute(sa.text(f"SELECT DISTINCT tenant_id FROM {table}")).scalars())
            for table in TABLES + TENANT_ONLY}


def test_the_serving_role_is_no_superuser_and_cannot_bypass_rls(serving):
    with serving.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")).one() == (False, False)


def test_alice_sees_only_acme_corp_data(serving, sample):
    acme = sample["orgs"]["acme-corp"]
    with serving.begin() as conn:
        as_user(conn, sample["people"]["alice@acme.com"])
        seen = tenants_seen(conn)
        organizations = set(conn.execute(sa.text(
            "SELECT t.slug FROM tenants t JOIN user_tenant_associations m ON m.tenant_id = t.id")).scalars())
    assert all(found <= {acme} for found in seen.values()), seen
    # and she does see it: Acme's members, the roles they hold, its audit trail
    for table in ("user_tenant_associations", "user_roles", "audit_logs"):
        assert seen[table] == {acme}, table
    assert all(not seen[table] for table in TENANT_ONLY), seen
    assert organizations == {"acme-corp"}


def test_charlie_sees_only_tech_startup_data(serving, sample):
    techstart, charlie = sample["orgs"]["techstart"], sample["people"]["charlie@techstart.io"]
    with serving.begin() as conn:
        as_user(conn, charlie)
        seen = tenants_seen(conn)
        elsewhere = set(conn.execute(sa.text("SELECT user_id FROM user_tenant_associations WHERE tenant_id <> :t"),
                                     {"t": techstart}).scalars())
    # Charlie also owns Delta Retail, which asked to be deleted: he reads his own membership there
    # (the switcher shows it, to cancel the deletion) and nothing else of it.
    assert elsewhere == {charlie}
    assert all(found <= {techstart} for table, found in seen.items() if table != "user_tenant_associations"), seen
    assert seen["audit_logs"] == {techstart} and all(not seen[table] for table in TENANT_ONLY), seen


def test_bob_cannot_see_charlies_data(serving, sample):
    techstart, bob = sample["orgs"]["techstart"], sample["people"]["bob@acme.com"]
    charlie = sample["people"]["charlie@techstart.io"]
    with serving.begin() as conn:
        as_user(conn, bob)
        for table in TABLES + TENANT_ONLY:
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"),
                                {"t": techstart}).scalar() == 0, table
        assert conn.execute(sa.text("SELECT count(*) FROM user_tenant_associations WHERE user_id = :c"),
                            {"c": charlie}).scalar() == 0
        # Not by asking for TechStart either: the request-context function enters it only for a member.
        assert conn.execute(sa.text("SELECT * FROM portal_enter_tenant(:u, 'techstart')"), {"u": bob}).all() == []
        assert conn.execute(sa.text("SELECT count(*) FROM devices")).scalar() == 0  # not even his own now
        # Nor changed: an update of TechStart's devices matches nothing.
        changed = conn.execute(sa.text("UPDATE devices SET name = 'pwned' WHERE tenant_id = :t"), {"t": techstart})
        assert changed.rowcount == 0


def test_users_see_only_their_own_sessions(app, serving, sample):
    alice, bob = sample["people"]["alice@acme.com"], sample["people"]["bob@acme.com"]
    for email in ("alice@acme.com", "bob@acme.com"):
        login(app.test_client(), email, SEED_PASSWORD)  # a session record each
    with serving.begin() as conn:
        as_user(conn, alice)
        owners = set(conn.execute(sa.text("SELECT user_id FROM user_sessions")).scalars())
        assert owners == {alice}
        assert conn.execute(sa.text("UPDATE user_sessions SET revoked_at = now() WHERE user_id = :b"),
                            {"b": bob}).rowcount == 0
    with serving.begin() as conn:  # nobody set: nobody's
        assert conn.execute(sa.text("SELECT count(*) FROM user_sessions")).scalar() == 0


def test_permission_based_updates_work_correctly(serving, sample):
    """Carol (Viewer + Field technician, at the Acme Warehouse) in a request of hers: the database
    lets her change a device's status and refuses what her roles do not allow."""
    carol = sample["people"]["carol@acme.com"]
    with serving.connect() as conn:
        with conn.begin() as tx:
            as_user(conn, carol)
            (entered,) = conn.execute(sa.text("SELECT t_id FROM portal_enter_tenant(:u, 'acme-corp')"),
                                      {"u": carol}).all()
            assert entered.t_id == sample["orgs"]["acme-corp"]
            allowed = conn.execute(sa.text("UPDATE devices SET status = 'maintenance' "
                                           "WHERE serial_number = 'ACME-CAM-0002'"))
            assert allowed.rowcount == 1  # devices:status, from Field technician
            tx.rollback()
        for refused in ("UPDATE sites SET name = name || ' (renamed)'",         # sites:write
                        "DELETE FROM devices WHERE serial_number = 'ACME-CAM-0002'",  # devices:write
                        "UPDATE user_tenant_associations SET role = 'owner' WHERE user_id = :u"):  # members:manage
            with conn.begin() as tx:
                as_user(conn, carol)
                conn.execute(sa.text("SELECT * FROM portal_enter_tenant(:u, 'acme-corp')"), {"u": carol})
                try:
                    result = conn.execute(sa.text(refused), {"u": carol})
                except DBAPIError as exc:  # refused by a policy: insufficient privilege (42501)
                    assert exc.orig.sqlstate == "42501", (refused, str(exc))
                else:
                    assert result.rowcount == 0, refused
                tx.rollback()


def test_user_has_permission_as_the_sample_roles_say(serving, sample):
    people, healthcare = sample["people"], sample["orgs"]["healthcare-co"]
    answers = {}
    for email in ("diana@healthcare.com", "evan@healthcare.com", "bob@acme.com"):
        with serving.begin() as conn:
            as_user(conn, people[email])
            for code in ("agents:run", "devices:write"):
                answers[email, code] = conn.execute(
                    sa.text("SELECT user_has_permission(:u, :t, :r, :a)"),
                    {"u": people[email], "t": healthcare, "r": code.split(":")[0], "a": code.split(":")[1]}).scalar()
    assert answers["diana@healthcare.com", "agents:run"] is True       # org admin
    assert answers["diana@healthcare.com", "devices:write"] is True
    assert answers["evan@healthcare.com", "agents:run"] is True        # Agent operator (seed 003's agent_user)
    assert answers["evan@healthcare.com", "devices:write"] is False    # runs agents, manages no device
    assert answers["bob@acme.com", "agents:run"] is False              # not a member of Healthcare Co
