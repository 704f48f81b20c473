"""/metrics (bearer token, off by default) and /readyz (database, migrations, worker)."""
from __future__ import annotations

import time

from conftest import make_app
from portal.jobs.worker import WorkerThread


def test_metrics_are_off_without_a_token(app):
    assert app.test_client().get("/metrics").status_code == 404


def test_metrics_need_the_bearer_token(db_urls, app):
    metered = make_app(db_urls, METRICS_TOKEN="s3cret-metrics-token")
    client = metered.test_client()
    client.get("/login")
    client.get("/no-such-page")
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    response = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"})
    assert response.status_code == 200 and response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert 'portal_request_duration_seconds_bucket{endpoint="accounts.login",le="0.1",method="GET"}' in body
    assert 'portal_responses_total{status="404"}' in body and 'portal_responses_total{status="200"}' in body
    for name in ("portal_db_pool_connections_in_use", "portal_outbox_pending", 'portal_jobs{state="todo"}',
                 'portal_jobs{state="failed"}', "portal_jobs_failed"):
        assert name in body, name


def test_readyz_wants_a_worker_seen_within_a_minute(db_urls, app):
    client = app.test_client()
    worker = WorkerThread(make_app(db_urls))
    worker.start()
    try:
        deadline = time.time() + 15
        while client.get("/readyz").status_code != 200 and time.time() < deadline:
            time.sleep(0.2)
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.json
        assert ready.json == {"status": "ok", "database": "ok", "migrations": "ok", "worker": "ok"}
    finally:
        worker.stop()
    gone = client.get("/readyz")  # a worker that stops signs off
    assert gone.status_code == 503 and gone.json["worker"] == "never seen" and gone.json["database"] == "ok"
