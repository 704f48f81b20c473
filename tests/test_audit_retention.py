"""Retention: owners set it (90 days at least); `flask audit prune` deletes what is older, in
chain order, and the rest still verifies."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from conftest import csrf_token, login
from portal import audit
from portal.database.context import tenant_scope
from portal.extensions import db


@pytest.fixture
def owner_engine(db_urls):
    engine = sa.create_engine(db_urls["owner"], poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def org(factory):
    owner, admin = factory.user(name="Olga Owner"), factory.user(name="Adam Admin")
    return {"t": factory.tenant(members={"owner": owner, "admin": admin}, sites=0), "owner": owner, "admin": admin}


def write(app, tenant_id, count):
    with app.app_context():
        with tenant_scope(db.session, tenant_id, actor="test:setup"):
            for i in range(count):
                audit.record(tenant_id, None, "site.update", "site", uuid.uuid4(), before={"n": i}, after={"n": i + 1})
        db.session.commit()


def backdate(owner_engine, tenant_id, up_to_seq, days):
    """As the owner, behind the portal's back: make the first rows old (their hashes no longer
    match, but they are the ones the prune deletes)."""
    with owner_engine.begin() as conn:
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})
        conn.execute(sa.text("UPDATE audit_logs SET created_at = now() - make_interval(days => :d) "
                             "WHERE tenant_id = :t AND seq <= :s"), {"d": days, "t": tenant_id, "s": up_to_seq})


def cli(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_owner_sets_retention_and_it_is_audited(app, org):
    t = org["t"]
    client = app.test_client()
    login(client, org["owner"].email)
    page = client.get(f"/t/{t['slug']}/audit/retention")
    assert page.status_code == 200 and 'value="365"' in page.get_data(as_text=True)
    saved = client.post(f"/t/{t['slug']}/audit/retention", data={"days": "120", "csrf_token": csrf_token(client)})
    assert saved.status_code == 303
    html = client.get(f"/t/{t['slug']}/audit/").get_data(as_text=True)
    assert "kept for 120 days" in html and "Olga Owner set audit retention to 120 days" in html
    assert "<del>365</del>" in html and "<ins>120</ins>" in html


@pytest.mark.parametrize("days", ["30", "89", "100000", "abc", ""])
def test_retention_below_the_minimum_or_not_a_number_is_refused(app, org, days):
    t = org["t"]
    client = app.test_client()
    login(client, org["owner"].email)
    response = client.post(f"/t/{t['slug']}/audit/retention", data={"days": days, "csrf_token": csrf_token(client)})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Enter a number from 90 to 3650." in html or "Enter a number of days." in html
    assert "kept for 365 days" in client.get(f"/t/{t['slug']}/audit/").get_data(as_text=True)


def test_admins_may_read_the_log_but_not_change_retention(app, org):
    t = org["t"]
    client = app.test_client()
    login(client, org["admin"].email)
    assert client.get(f"/t/{t['slug']}/audit/").status_code == 200
    assert client.post(f"/t/{t['slug']}/audit/retention", data={"days": "90", "csrf_token": csrf_token(client)}
                       ).status_code == 403
    assert "Retention</a>" not in client.get(f"/t/{t['slug']}/audit/").get_data(as_text=True)


def test_prune_deletes_old_rows_in_chain_order_and_the_rest_verifies(app, org, owner_engine):
    t = org["t"]
    write(app, t["id"], 6)
    backdate(owner_engine, t["id"], 3, 400)
    result = cli(app, "audit", "prune", "--tenant", t["slug"])
    assert result.exit_code == 0 and f"{t['slug']}: 3 rows older than 365 days pruned." in result.output
    verified = cli(app, "audit", "verify", "--tenant", t["slug"])
    assert verified.exit_code == 0, verified.output
    assert "4 rows verified, head row 7" in verified.output  # rows 4-6 and the prune's own row 7
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        left = db.session.execute(sa.text("SELECT seq, action FROM audit_logs ORDER BY seq")).all()
        checkpoint = db.session.execute(sa.text("SELECT seq, pruned_rows FROM audit_checkpoints")).one()
    assert [r.seq for r in left] == [4, 5, 6, 7] and left[-1].action == "audit.prune"
    assert tuple(checkpoint) == (3, 3)
    assert "Pruned 0 rows" in cli(app, "audit", "prune", "--tenant", t["slug"]).output  # nothing more is old
    write(app, t["id"], 2)
    assert "6 rows verified, head row 9" in cli(app, "audit", "verify", "--tenant", t["slug"]).output


def test_prune_of_a_whole_chain_continues_from_the_checkpoint(app, org, owner_engine):
    t = org["t"]
    write(app, t["id"], 3)
    backdate(owner_engine, t["id"], 3, 400)
    assert "3 rows older" in cli(app, "audit", "prune", "--tenant", t["slug"]).output
    result = cli(app, "audit", "verify", "--tenant", t["slug"])
    assert result.exit_code == 0 and "1 rows verified, head row 4" in result.output


def test_deleting_rows_after_a_prune_is_still_detected(app, org, owner_engine):
    t = org["t"]
    write(app, t["id"], 5)
    backdate(owner_engine, t["id"], 2, 400)
    cli(app, "audit", "prune", "--tenant", t["slug"])
    with owner_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_logs WHERE tenant_id = :t AND seq = 3"), {"t": t["id"]})
    result = cli(app, "audit", "verify", "--tenant", t["slug"])
    assert result.exit_code == 1 and "jumps from row 2 to row 4" in result.output


def test_the_database_refuses_to_prune_recent_rows_or_another_tenant(app, org, factory, db_urls):
    t, other = org["t"], factory.tenant(sites=0)
    engine = sa.create_engine(db_urls["app"], poolclass=sa.pool.NullPool)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="at least 90 days"):
            with engine.begin() as conn:
                conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(t["id"])})
                conn.execute(sa.text("SELECT audit_prune(:t, now())"), {"t": t["id"]})
        with pytest.raises(sa.exc.DBAPIError, match="not the tenant of this transaction"):
            with engine.begin() as conn:
                conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(t["id"])})
                conn.execute(sa.text("SELECT audit_prune(:o, now() - interval '1 year')"), {"o": other["id"]})
    finally:
        engine.dispose()


def test_the_worker_prunes_daily_as_the_command_does(app, org, owner_engine):
    """The job engine's daily `audit.prune` (migration-free: a procrastinate periodic task)."""
    from portal.audit.tasks import prune_audit
    from portal.jobs.engine import bind, jobs
    assert any(p.periodic_id == "audit.prune" for p in jobs.periodic_registry.periodic_tasks.values())
    t = org["t"]
    write(app, t["id"], 4)
    backdate(owner_engine, t["id"], 2, 400)
    bind(app)
    assert prune_audit(timestamp=0) >= 2
    result = cli(app, "audit", "verify", "--tenant", t["slug"])
    assert result.exit_code == 0 and "3 rows verified" in result.output  # rows 3-4 and the prune's own
