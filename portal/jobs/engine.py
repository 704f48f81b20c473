"""The job engine: one procrastinate App on the portal's PostgreSQL, no other broker.

Web requests defer jobs through their own transaction (`defer`), so a job exists exactly when
the change that asked for it was committed. Workers (`flask worker`) connect as the serving
role, like the web processes, and run each task inside the Flask app they were started with.
"""
from __future__ import annotations

import procrastinate
from flask import Flask
from procrastinate.manager import JobManager
from procrastinate.tasks import configure_task

from ..extensions import db

# Each area keeps its tasks in its own tasks.py; the worker imports these.
TASK_MODULES = ["portal.mail.tasks", "portal.invitations.tasks", "portal.security.tasks", "portal.jobs.tasks",
                "portal.organization.tasks", "portal.audit.tasks", "portal.tasks.jobs", "portal.notifications.tasks",
                "portal.api.tasks", "portal.agents.tasks", "portal.analytics.tasks", "portal.sso.tasks"]

jobs = procrastinate.App(connector=procrastinate.PsycopgConnector(), import_paths=TASK_MODULES)
# Requests defer through their own connection with a sync connector of their own: in a process that
# also runs a worker (`make run`), the App's connector is the worker's async one.
request_connector = procrastinate.SyncPsycopgConnector()
_request_jobs = JobManager(request_connector)
_flask_app: Flask | None = None


def bind(app: Flask) -> None:
    """The Flask app whose config and database the tasks of this process use."""
    global _flask_app
    _flask_app = app


def flask_app() -> Flask:
    if _flask_app is None:
        raise RuntimeError("the job engine is not bound to a Flask app")
    return _flask_app


def request_connection():
    """The psycopg connection of the current SQLAlchemy transaction."""
    return db.session.connection().connection.driver_connection


def defer(task_name: str, **kwargs) -> None:
    """Queue `task_name(**kwargs)` in the current transaction: committed or rolled back with it."""
    jobs.perform_import_paths()
    task = jobs.tasks[task_name]
    configure_task(name=task.name, job_manager=_request_jobs, queue=task.queue, lock=task.lock,
                   queueing_lock=task.queueing_lock, priority=task.priority,
                   connection=request_connection()).defer(**kwargs)
