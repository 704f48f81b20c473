"""Heavy reads on a real streaming replica (DATABASE_REPLICA_URL): made with pg_basebackup -R from the
test's embedded server, its replay paused with pg_wal_replay_pause() to see which server a page read.
What a person sees: pages read on the replica keep the tenant's row-level security; a person who just
changed something reads it back (their reads wait for the replica or go to the primary); a replica
lagging too far, or down, is skipped."""
from __future__ import annotations

import csv
import io
import os
import time

import pytest

from bench.pgnodes import Replica
from conftest import ROOT, csrf_token, login, make_app
from portal import metrics
from portal.database import replica as routing

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")), reason="builds its replica from the embedded server's socket")]


@pytest.fixture(scope="module")
def standby(db_urls):
    node = Replica(ROOT / "instance" / f"pgtest-replica-{os.getpid()}", db_urls["admin"]).create().start()
    node.wait_caught_up()
    yield node
    node.stop("immediate")
    import shutil
    shutil.rmtree(node.pgdata, ignore_errors=True)


@pytest.fixture(scope="module")
def replica_app(app, db_urls, standby):
    """The portal with a replica (the schema and sample data came from the session's app)."""
    return make_app(db_urls, DATABASE_REPLICA_URL=standby.url(db_urls["app"]), DATABASE_REPLICA_MAX_LAG=60,
                    DATABASE_REPLICA_RETRY_SECONDS=0)


def reads(target: str) -> float:
    return metrics.REPLICA_READS.labels(target)._value.get()


def statuses(client, slug: str) -> dict[str, str]:
    """Device name -> status, from the device CSV export (what a person downloads)."""
    response = client.get(f"/t/{slug}/devices/export.csv")
    assert response.status_code == 200
    return {row["name"]: row["status"] for row in csv.DictReader(io.StringIO(response.get_data(as_text=True)))}


def test_replica_reads_keep_isolation_and_a_persons_writes(replica_app, standby, factory):
    owner, other = factory.user(name="Rhea Replica"), factory.user(name="Bo Other")
    a = factory.tenant(members={"owner": owner}, devices=2)
    b = factory.tenant(members={"owner": other}, devices=1)
    writer, reader, b_reader = (replica_app.test_client() for _ in range(3))
    login(writer, owner.email)
    login(reader, owner.email)  # the same person in another browser: it has written nothing
    login(b_reader, other.email)
    device_name = f"Device 0-0 {a['slug']}"
    assert statuses(reader, a["slug"])[device_name] == "online"
    statuses(b_reader, b["slug"])  # a first visit to a tenant writes (the tenant last used): before the pause
    standby.wait_caught_up()
    standby.sql("SELECT pg_wal_replay_pause()")
    try:
        before = reads("replica")
        changed = writer.post(f"/t/{a['slug']}/devices/{a['devices'][0]}/status",
                              data={"status": "maintenance", "csrf_token": csrf_token(writer)})
        assert changed.status_code == 303
        sentence = f"changed the status of ‘{device_name}’ from online to maintenance"

        # The writer reads their change back: the paused replica has not replayed it, so the primary serves them.
        assert sentence in writer.get(f"/t/{a['slug']}/audit/").get_data(as_text=True)
        assert statuses(writer, a["slug"])[device_name] == "maintenance"
        # The other browser reads the replica, as it was before the change, under tenant A's context only.
        page = reader.get(f"/t/{a['slug']}/audit/")
        assert page.status_code == 200 and sentence not in page.get_data(as_text=True)
        seen = statuses(reader, a["slug"])
        assert seen[device_name] == "online" and set(seen) == {f"Device 0-{i} {a['slug']}" for i in range(2)}
        assert set(statuses(b_reader, b["slug"])) == {f"Device 0-0 {b['slug']}"}  # B's context on the replica
        assert reads("replica") - before >= 3
        with replica_app.app_context(), routing.reads(fresh=True) as where:
            assert where == "behind_write"  # a job wants everything committed before it started

        # A replica further behind than DATABASE_REPLICA_MAX_LAG is skipped for everyone.
        time.sleep(0.3)
        replica_app.config["DATABASE_REPLICA_MAX_LAG"] = 0.2
        try:
            assert statuses(reader, a["slug"])[device_name] == "maintenance"
        finally:
            replica_app.config["DATABASE_REPLICA_MAX_LAG"] = 60
    finally:
        standby.sql("SELECT pg_wal_replay_resume()")
    standby.wait_caught_up()
    assert sentence in reader.get(f"/t/{a['slug']}/audit/").get_data(as_text=True)
    with replica_app.app_context(), routing.reads(fresh=True, wait=2) as where:
        assert where == "replica"  # a job gets the replica once it has replayed what came before the job
    assert statuses(reader, a["slug"])[device_name] == "maintenance"

    # The replica stopped: the same pages read the primary, no error.
    standby.stop("immediate")
    try:
        down = reads("down")
        assert statuses(reader, a["slug"])[device_name] == "maintenance"
        assert sentence in reader.get(f"/t/{a['slug']}/audit/").get_data(as_text=True)
        assert reads("down") - down == 2
    finally:
        standby.start()
    standby.wait_caught_up()
    assert reader.get(f"/t/{a['slug']}/audit/").status_code == 200
