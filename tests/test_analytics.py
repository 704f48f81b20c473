"""Analytics events (issue 15): recording, isolation (through the parent and a partition read
directly), partitions made ahead, retention per plan, the custom-event validator, the charts
and the query plan's partition pruning."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from conftest import csrf_token, login

from portal.analytics import events, queries, retention
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.tenancy import context_for
from portal.tenancy.models import Membership
from portal.tenants.models import Tenant

HX = {"HX-Request": "true"}
NOW = lambda: datetime.now(timezone.utc)  # noqa: E731


def month_after(day: date, months: int) -> date:
    m = day.month - 1 + months
    return date(day.year + m // 12, m % 12 + 1, 1)


def add(app, tenant_id, rows):
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        events.record_many(tenant_id, rows)
        db.session.commit()


def count(app, tenant_id, sql="SELECT count(*) FROM analytics_events", **params):
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        return db.session.execute(sa.text(sql), params).scalar()


@pytest.fixture
def owner_engine(db_urls):
    engine = sa.create_engine(db_urls["owner"], poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def test_recorded_by_the_pages_and_never_counted_for_another_tenant(app, world):
    a, b, owner = world["a"], world["b"], world["users"]["owner"]
    add(app, b["id"], [events.event("member.signin", {"user_id": "x"}) for _ in range(5)])
    c = app.test_client()
    login(c, owner.email)
    assert c.get(f"/t/{a['slug']}/").status_code == 200
    assert c.get(f"/t/{a['slug']}/").status_code == 200  # once per session and tenant
    token = csrf_token(c)
    r = c.post(f"/t/{a['slug']}/devices/{a['devices'][0]}/status", headers=HX,
               data={"csrf_token": token, "status": "maintenance"})
    assert r.status_code == 200
    assert count(app, a["id"], "SELECT count(*) FROM analytics_events WHERE event_type = 'member.signin'") == 1
    change = count(app, a["id"], "SELECT properties FROM analytics_events WHERE event_type = 'device.status'")
    assert change == {"device_id": str(a["devices"][0]), "site_id": str(a["sites"][0]), "from": "online",
                      "to": "maintenance"}
    page = c.get(f"/t/{a['slug']}/analytics/?type=member.signin&range=7").get_data(as_text=True)
    assert re.search(r"<strong data-total>1</strong>", page)
    # B's five sign-ins are B's only, whichever way they are asked for.
    assert count(app, a["id"], "SELECT count(*) FROM analytics_events WHERE tenant_id = :b", b=b["id"]) == 0
    with app.app_context(), tenant_scope(db.session, a["id"], actor="test:setup"):
        assert sum(n for _, n in queries.per_day(b["id"], "member.signin", NOW().date() - timedelta(days=1),
                                                  NOW().date())) == 0


def test_a_partition_read_directly_is_refused_and_covered(app, world, db_urls, owner_engine):
    a, b = world["a"], world["b"]
    add(app, a["id"], [events.event("door.opened")])
    add(app, b["id"], [events.event("door.opened")])
    part = f"analytics_events_p{NOW():%Y_%m}"
    serving = sa.create_engine(db_urls["app"], poolclass=sa.pool.NullPool)
    try:
        with serving.connect() as conn:  # the serving role has no privilege on a partition itself
            with pytest.raises(sa.exc.DBAPIError, match="permission denied"):
                conn.execute(sa.text(f"SELECT count(*) FROM {part}"))
        role = db_urls["app"].rsplit("/", 1)[0].split("//", 1)[1].split("@")[0].split(":")[0]
        with owner_engine.begin() as conn:
            conn.execute(sa.text(f'GRANT SELECT ON {part}, analytics_events_default TO "{role}"'))
        try:
            with serving.begin() as conn:  # and even granted, its own policy holds
                assert conn.execute(sa.text(f"SELECT count(*) FROM {part}")).scalar() == 0
                conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(a["id"])})
                assert conn.execute(sa.text(f"SELECT DISTINCT tenant_id FROM {part}")).scalars().all() == [a["id"]]
                assert conn.execute(sa.text("SELECT count(*) FROM analytics_events_default WHERE tenant_id = :b"),
                                    {"b": b["id"]}).scalar() == 0
        finally:
            with owner_engine.begin() as conn:
                conn.execute(sa.text(f'REVOKE SELECT ON {part}, analytics_events_default FROM "{role}"'))
    finally:
        serving.dispose()


def test_partitions_are_made_ahead_idempotently_and_take_over_the_default(app, world):
    a = world["a"]
    far = month_after(NOW().date(), 5)  # beyond the two months made ahead
    nxt = month_after(far, 1)
    stray = datetime(nxt.year, nxt.month, 2, 12, tzinfo=timezone.utc)  # no month yet: the default partition keeps it
    add(app, a["id"], [events.event("door.opened", occurred_at=stray)])
    where = "SELECT tableoid::regclass::text FROM analytics_events WHERE occurred_at = :at"
    assert count(app, a["id"], where, at=stray) == "analytics_events_default"
    with app.app_context():
        assert retention.ensure_partitions(today=far) == 3
        db.session.commit()
        assert retention.ensure_partitions(today=far) == 0
        db.session.commit()
        names = retention.partitions()
    assert {f"analytics_events_p{month_after(far, k):%Y_%m}" for k in (0, 1, 2)} <= set(names)
    assert count(app, a["id"], where, at=stray) == f"analytics_events_p{nxt:%Y_%m}"
    result = app.test_cli_runner().invoke(args=["analytics", "partitions"])
    assert result.exit_code == 0 and result.output.startswith("0 new partition(s)"), result.output


def test_the_daily_job_makes_the_months_ahead(app, owner_engine):
    from portal.analytics.tasks import make_partitions
    from portal.jobs.engine import bind, jobs
    periodic = {p.periodic_id for p in jobs.periodic_registry.periodic_tasks.values()}
    assert {"analytics.partitions", "analytics.prune"} <= periodic
    ahead = f"analytics_events_p{month_after(NOW().date(), 2):%Y_%m}"
    with owner_engine.begin() as conn:  # as if the worker had not run since last month
        conn.execute(sa.text(f"DROP TABLE {ahead}"))
    bind(app)
    assert make_partitions(timestamp=0) == 1
    assert make_partitions(timestamp=0) == 0
    with app.app_context():
        names = retention.partitions()
    for k in range(3):
        assert f"analytics_events_p{month_after(NOW().date(), k):%Y_%m}" in names


def test_retention_drops_whole_old_months_and_deletes_rows_past_each_plan(app, factory, owner_engine):
    free = factory.tenant(plan="free", sites=0)
    big = factory.tenant(sites=0)  # enterprise: 730 days
    old, recent = NOW() - timedelta(days=40), NOW() - timedelta(days=2)
    for t in (free, big):
        add(app, t["id"], [events.event("door.opened", occurred_at=old), events.event("door.opened", occurred_at=recent)])
    ancient = date(NOW().year - 3, 1, 1)
    with app.app_context():
        retention.ensure_partitions(today=ancient, months_ahead=0)
        db.session.commit()
    add(app, big["id"], [events.event("door.opened", occurred_at=datetime(ancient.year, 1, 15, tzinfo=timezone.utc))])
    with app.app_context():
        dropped, _ = retention.prune()
        assert f"analytics_events_p{ancient.year}_01" in dropped
        assert f"analytics_events_p{ancient.year}_01" not in retention.partitions()
    assert count(app, free["id"]) == 1  # 30 days on the free plan
    assert count(app, free["id"], "SELECT sum(events) FROM analytics_daily") == 1
    assert count(app, big["id"]) == 2
    assert count(app, free["id"], "SELECT count(*) FROM audit_logs WHERE action = 'analytics.prune'") == 1


def test_the_batch_validator():
    ok = {"type": "door.opened", "properties": {"door": 3}}
    rows, errors = events.validate_custom([ok] * 1000)
    assert len(rows) == 1000 and errors == []
    rows, errors = events.validate_custom([ok] * 1001)
    assert rows == [] and [e.message for e in errors] == [
        "A batch holds at most 1,000 events; this one has 1,001. Split it into several requests."]
    bad = [ok, {"type": "Door Opened"}, {"type": "device.status"}, {"type": "x", "properties": []},
           {"type": "x", "properties": {"blob": "a" * 5000}}, {"type": "x", "occurred_at": "2001-01-01T00:00:00Z"},
           {"type": "x", "occurred_at": "2026-01-01T00:00:00"}, {"type": "x", "colour": "red"}, "nope"]
    rows, errors = events.validate_custom(bad)
    assert rows == []
    assert [e.pointer for e in errors] == ["/1/type", "/2/type", "/3/properties", "/4/properties", "/5/occurred_at",
                                           "/6/occurred_at", "/7/colour", "/8"]
    assert "is not a valid type" in errors[0].message and "portal's own" in errors[1].message
    assert events.validate_custom([])[1][0].message.startswith("The batch is empty")


def test_record_custom_is_one_statement_and_all_or_nothing(app, world):
    a, owner = world["a"], world["users"]["owner"]
    with app.app_context(), tenant_scope(db.session, a["id"], actor="test:setup"):
        tenant = db.session.get(Tenant, a["id"])
        member = db.session.scalar(sa.select(Membership).where(Membership.tenant_id == a["id"],
                                                               Membership.user_id == owner.id))
        ctx = context_for(tenant, member)
        seen = []

        def spy(conn, cursor, statement, *args):
            seen.append(statement)
        sa.event.listen(db.engine, "before_cursor_execute", spy)
        try:
            result = events.record_custom(ctx, [{"type": "door.opened", "name": f"door {i}"} for i in range(300)])
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", spy)
        assert result.ok and result.recorded == 300
        assert sum(1 for s in seen if "INSERT INTO analytics_events" in s) == 1 and len(seen) == 1
        assert not events.record_custom(ctx, [{"type": "door.opened"}, {"type": "BAD"}]).ok
        db.session.commit()
    assert count(app, a["id"]) == 300


def test_devices_online_are_rebuilt_from_status_changes(app, factory):
    t = factory.tenant(sites=1, devices=0)
    today = NOW().date()
    at = lambda days: datetime.combine(today - timedelta(days=days), datetime.min.time(), timezone.utc) + timedelta(hours=12)  # noqa: E731
    add(app, t["id"], [events.event("device.status", {"from": "offline", "to": "online"}, at(3)),
                       events.event("device.status", {"from": "online", "to": "offline"}, at(0)),
                       events.event("device.status", {"from": None, "to": "online"}, at(10)),
                       events.event("device.status", {"from": "online", "to": "error"}, at(0), source="api")])
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        online = dict(queries.online_per_day(t["id"], 1, today, 30))
    assert [online[today - timedelta(days=d)] for d in (0, 1, 2, 3, 4, 9, 10, 11)] == [1, 2, 2, 2, 1, 1, 1, 0]


def test_charts_render_link_and_are_for_managers(app, world):
    a, users = world["a"], world["users"]
    add(app, a["id"], [events.event("door.opened"), events.event("door.opened"), events.event("backup.done")])
    c = app.test_client()
    login(c, users["owner"].email)
    page = c.get(f"/t/{a['slug']}/").get_data(as_text=True)
    assert "Devices online, last 30 days" in page and "Events per day by type" in page
    assert re.search(rf'<a href="/t/{a["slug"]}/analytics/\?[^"]*type=door.opened[^"]*" aria-label="[^"]+: 4 events',
                     page)  # door.opened twice, backup.done, and this visit's sign-in
    assert "style=" not in page
    chart = c.get(f"/t/{a['slug']}/analytics/?type=door.opened&range=custom&start=2020-01-01&end=2020-01-05",
                  headers=HX)
    body = chart.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="analytics-chart"') and "<html" not in body
    assert "No <code>door.opened</code> events in this range." in body and body.count("<tr>") == 6
    bad = c.get(f"/t/{a['slug']}/analytics/?range=custom&start=2026-02-01&end=2025-01-01").get_data(as_text=True)
    assert "The first date must not be after the last." in bad
    r = c.post(f"/t/{a['slug']}/analytics/events", data={"csrf_token": csrf_token(c), "type": "Not OK"})
    assert r.status_code == 422 and "is not a valid type" in r.get_data(as_text=True)
    r = c.post(f"/t/{a['slug']}/analytics/events", data={"csrf_token": csrf_token(c), "type": "maintenance.window",
                                                          "properties": '{"site": "HQ"}'})
    assert r.status_code == 303
    assert count(app, a["id"], "SELECT properties FROM analytics_events WHERE event_type = 'maintenance.window'") \
        == {"site": "HQ"}
    m = app.test_client()
    login(m, users["member"].email)
    assert "Events per day by type" not in m.get(f"/t/{a['slug']}/").get_data(as_text=True)


def test_a_tenants_30_days_per_day_prune_to_their_months(app, world):
    a = world["a"]
    last = NOW().date()
    first = last - timedelta(days=29)
    with app.app_context(), tenant_scope(db.session, a["id"], actor="test:setup"):
        plan = "\n".join(db.session.scalars(sa.text("EXPLAIN " + queries._PER_DAY.text), {
            "t": a["id"], "type": "door.opened", "lo": queries.utc_midnight(first),
            "hi": queries.utc_midnight(last + timedelta(days=1))}))
        scanned = set(re.findall(r"analytics_events_(p\d{4}_\d{2}|default)", plan))
        months = {f"p{d:%Y_%m}" for d in (first, last)}
    assert scanned == months, plan


def test_the_sample_tenant_has_a_month_of_events(app):
    from conftest import SEED_PASSWORD
    c = app.test_client()
    login(c, "alice@acme.com", SEED_PASSWORD)
    page = c.get("/t/acme-corp/").get_data(as_text=True)
    assert "No events in the last 30 days." not in page and "door.opened" in page
    online = re.findall(r'aria-label="[A-Z][a-z]{2} \d+: (\d+) devices?"', page)
    assert len(online) == 30 and len(set(online)) > 1  # the fleet changed over the month
