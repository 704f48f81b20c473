"""Deleting an organization: an owner asks (password and address again), it waits read-only
for the grace period while any owner may cancel, then `flask tenants purge` removes every row
of it in every tenant table and leaves a tombstone that keeps its address."""
from __future__ import annotations

import sqlalchemy as sa

from conftest import PASSWORD, csrf_token, login
from portal.accounts.models import UserType
from portal.database.context import acting_as, tenant_scope
from portal.extensions import db
from portal.mail.models import OutboxMessage
from test_schema import TENANT_TABLES_SQL


def post(client, url, **data):
    return client.post(url, data={"csrf_token": csrf_token(client), **data})


def test_owner_asks_members_are_told_an_owner_cancels(app, factory):
    owner, other_owner, member = factory.user(), factory.user(), factory.user()
    t = factory.tenant(members={"owner": owner, "member": member}, sites=1, devices=1)
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        db.session.execute(sa.text("INSERT INTO user_tenant_associations (tenant_id, user_id, role) "
                                   "VALUES (:t, :u, 'owner')"), {"t": t["id"], "u": other_owner.id})
        db.session.commit()
    clients = {}
    for name, user in (("owner", owner), ("other", other_owner), ("member", member)):
        clients[name] = app.test_client()
        login(clients[name], user.email)
    url = f"/t/{t['slug']}/settings/delete"
    r = post(clients["owner"], url, confirm="wrong-slug", password=PASSWORD)
    assert r.status_code == 422 and f"Type {t['slug']} to confirm" in r.get_data(as_text=True)
    r = post(clients["owner"], url, confirm=t["slug"], password="not my password")
    assert r.status_code == 422 and "password is not right" in r.get_data(as_text=True)
    assert post(clients["member"], url, confirm=t["slug"], password=PASSWORD).status_code == 403
    r = post(clients["owner"], url, confirm=t["slug"], password=PASSWORD)
    assert r.status_code == 303
    with app.app_context():
        told = set(db.session.scalars(sa.select(OutboxMessage.recipient).where(OutboxMessage.kind == "tenant_deletion")))
    assert {owner.email, other_owner.email, member.email} <= told
    page = clients["member"].get(f"/t/{t['slug']}/devices/").get_data(as_text=True)
    assert "will be deleted on" in page and "Cancel the deletion" not in page  # members read, owners cancel
    r = post(clients["member"], f"/t/{t['slug']}/devices/{t['devices'][0]}/status", status="error")
    assert r.status_code == 423
    assert post(clients["member"], f"/t/{t['slug']}/settings/cancel-deletion").status_code == 303
    assert "will be deleted on" in clients["member"].get(f"/t/{t['slug']}/").get_data(as_text=True)  # refused
    assert "Cancel the deletion" in clients["other"].get(f"/t/{t['slug']}/").get_data(as_text=True)
    assert post(clients["other"], f"/t/{t['slug']}/settings/cancel-deletion").status_code == 303
    assert "will be deleted on" not in clients["member"].get(f"/t/{t['slug']}/").get_data(as_text=True)
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        actions = db.session.scalars(sa.text(
            "SELECT action FROM audit_logs WHERE resource_type = 'tenant' ORDER BY seq")).all()
    assert actions == ["tenant.delete_request", "tenant.delete_cancel"]


def test_purge_removes_every_row_of_the_tenant_and_nothing_else(app, factory):
    owner = factory.user()
    doomed = factory.tenant(members={"owner": owner, "member": factory.user()}, sites=2, devices=3)
    kept = factory.tenant(members={"owner": factory.user()}, sites=1, devices=2)
    client = app.test_client()
    login(client, owner.email)
    # Rows in as many tenant tables as the portal writes: a custom role, an invitation, audit rows.
    post(client, f"/t/{doomed['slug']}/roles/new", name="Doomed role", permissions=["devices:view"])
    post(client, f"/t/{doomed['slug']}/invitations/", emails="late@example.com", role="member")
    assert post(client, f"/t/{doomed['slug']}/settings/delete", confirm=doomed["slug"], password=PASSWORD).status_code == 303

    runner = app.test_cli_runner()
    assert "Purged 0 tenants" in runner.invoke(args=["tenants", "purge"]).output  # the grace period holds
    with app.app_context(), acting_as(db.session, "test:setup"):  # the grace period, over
        db.session.execute(sa.text("UPDATE tenants SET purge_after = now() - interval '1 minute' WHERE id = :t"),
                           {"t": doomed["id"]})
        db.session.commit()
    result = runner.invoke(args=["tenants", "purge"])
    assert result.exit_code == 0 and "Purged 1 tenant" in result.output, result.output

    admin_engine = sa.create_engine(app.config["MIGRATION_DATABASE_URL"], poolclass=sa.pool.NullPool)
    with admin_engine.connect() as conn:  # the owner role (BYPASSRLS) sees every row
        tables = [row[1] for row in conn.execute(sa.text(TENANT_TABLES_SQL))]
        assert {"devices", "audit_logs", "tenant_roles", "tenant_invitations"} <= set(tables)
        left = {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}" WHERE tenant_id = :d'), {"d": doomed["id"]}).scalar()
                for t in tables}
        assert left == {t: 0 for t in tables}
        assert conn.execute(sa.text("SELECT count(*) FROM devices WHERE tenant_id = :k"), {"k": kept["id"]}).scalar() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM tenants WHERE id = :d"), {"d": doomed["id"]}).scalar() == 0
        assert conn.execute(sa.text("SELECT slug FROM tenant_tombstones WHERE id = :d"),
                            {"d": doomed["id"]}).scalar() == doomed["slug"]
    admin_engine.dispose()
    # The address stays reserved, and the console lists the tombstone.
    sysadmin = app.test_client()
    login(sysadmin, factory.user(user_type=UserType.SYSTEM_ADMIN).email)
    r = post(sysadmin, "/admin/tenants/new", name="Reuse", slug=doomed["slug"], plan="free",
             owner_email="x@example.com")
    assert r.status_code == 422 and "by a deleted organization" in r.get_data(as_text=True)
    assert doomed["slug"] in sysadmin.get("/admin/tenants").get_data(as_text=True)
    # The other tenant's audit chain is intact (others in this run are tampered with on purpose).
    assert runner.invoke(args=["audit", "verify", "--tenant", kept["slug"]]).exit_code == 0


def test_the_serving_role_cannot_purge_a_tenant_that_did_not_ask(app, factory):
    t = factory.tenant(members={"owner": factory.user()}, sites=1, devices=1)
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT portal_purge_tenant(:t)"), {"t": t["id"]}) is False
        db.session.commit()
        assert db.session.scalar(sa.text("SELECT count(*) FROM tenants WHERE id = :t"), {"t": t["id"]}) == 1
