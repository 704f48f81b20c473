"""/metrics in Prometheus' text format, only when METRICS_TOKEN is set and only with that bearer token.

Per process: request latency per endpoint, responses by status, database connections in use. From
the database at scrape time: outbox and job queue depth, failed jobs, emails that failed for good by
reason (counted from the outbox, so every process and worker machine is included). Under gunicorn with several
workers set PROMETHEUS_MULTIPROC_DIR (an empty folder) so the counters of every worker add up.
"""
from __future__ import annotations

import hmac
import os
import time

from flask import Flask, Response, abort, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import text

from .extensions import db
from .mail.models import Failure

REQUEST_SECONDS = Histogram("portal_request_duration_seconds", "Time to answer a request, by endpoint.",
                            ["endpoint", "method"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RESPONSES = Counter("portal_responses_total", "Responses sent, by status code.", ["status"])
REQUEST_RETRIES = Counter("portal_request_retries_total", "Requests run a second time after a deadlock, a "
                          "serialization failure or a lock timeout (database.conflicts).")
REPLICA_READS = Counter("portal_replica_reads_total", "Blocks of heavy reads (database.replica), by where they ran: "
                        "replica, or why not (down, lag, behind_write, not_standby).", ["target"])

_QUEUES = text("""
SELECT (SELECT count(*) FROM email_outbox WHERE status = 'pending') AS outbox_pending,
       (SELECT count(*) FROM email_outbox WHERE status = 'failed') AS outbox_failed,
       (SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo') AS jobs_todo,
       (SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing') AS jobs_doing,
       (SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed') AS jobs_failed
""")
# Outbox rows are never deleted and keep their failure when retried: the count only grows.
_MAIL_FAILURES = text("SELECT failure, count(*) FROM email_outbox WHERE failure IS NOT NULL GROUP BY failure")


class DatabaseCollector:
    """Read at scrape time: the pool of this process and the queues in the database."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        pool = GaugeMetricFamily("portal_db_pool_connections_in_use", "Database connections checked out of this "
                                 "process's pool.")
        pool.add_metric([], db.engine.pool.checkedout())
        yield pool
        row = db.session.execute(_QUEUES).one()
        yield GaugeMetricFamily("portal_outbox_pending", "Emails waiting to be delivered.", value=row.outbox_pending)
        yield GaugeMetricFamily("portal_outbox_failed", "Emails that failed for good.", value=row.outbox_failed)
        jobs = GaugeMetricFamily("portal_jobs", "Jobs by state (todo = queue depth).", labels=["state"])
        for state in ("todo", "doing", "failed"):
            jobs.add_metric([state], getattr(row, f"jobs_{state}"))
        yield jobs
        yield GaugeMetricFamily("portal_jobs_failed", "Jobs that failed for good (see /admin/jobs).",
                                value=row.jobs_failed)
        failed = dict(db.session.execute(_MAIL_FAILURES).all())
        mail = CounterMetricFamily("portal_mail_failed", "Emails that failed for good, by reason: unbuildable "
                                   "(cannot be written), refused (5xx from SMTP), exhausted (retries used up).",
                                   labels=["reason"])
        for reason in Failure:
            mail.add_metric([reason.value], failed.get(reason.value, 0))
        yield mail


# The labelled children, looked up once per label values: `labels()` validates and locks on every call.
_latency_children: dict = {}
_response_children: dict = {}


def _observe(response):
    started = g.get("started")
    if started is not None:
        key = (request.endpoint or "unmatched", request.method)
        child = _latency_children.get(key)
        if child is None:
            child = _latency_children[key] = REQUEST_SECONDS.labels(*key)
        child.observe(time.perf_counter() - started)
    code = response.status_code
    counter = _response_children.get(code)
    if counter is None:
        counter = _response_children[code] = RESPONSES.labels(str(code))
    counter.inc()
    return response


def metrics():
    token = current_app.config["METRICS_TOKEN"]
    if not token:
        abort(404)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Response("A bearer token is required.\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'},
                        mimetype="text/plain")
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY
        registry = REGISTRY
    body = generate_latest(registry) + generate_latest(_database_registry(current_app._get_current_object()))
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def _database_registry(app: Flask) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(app))
    return registry


def init_app(app: Flask) -> None:
    app.after_request(_observe)
    app.add_url_rule("/metrics", "metrics", metrics)
