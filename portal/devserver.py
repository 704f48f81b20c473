"""`make run`: migrate, load the sample data once, and serve, in one process with a job worker.

One process owns the embedded PostgreSQL, the web server and the worker (a thread), so Ctrl-C
or SIGTERM stops all three: the worker finishes its jobs in flight, then the database stops.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

from flask_migrate import upgrade
from werkzeug.serving import WSGIRequestHandler

from . import create_app
from .config import serve_address
from .extensions import db
from .jobs.worker import WorkerThread
from .seeding import load_sample


def _stop_with_parent() -> None:
    """`make run` is our parent: if make is sent SIGTERM, we get it too (Linux), and stop cleanly."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def main() -> None:
    _stop_with_parent()
    os.environ.setdefault("PORTAL_ENV", "development")
    app = create_app()
    with app.app_context():
        upgrade()
        if app.config["PORTAL_ENV"] != "production" and load_sample(app.config["SEED_PASSWORD"]):
            db.session.commit()
            app.logger.info("Sample data loaded.")
    host, port = serve_address()
    demo = _sso_demo_provider(app)
    worker = WorkerThread(app, concurrency=app.config["WORKER_CONCURRENCY"])
    worker.start()
    print(f" * Portal on http://{host}:{port}/ with a job worker (Ctrl-C stops both and the embedded database)",
          flush=True)
    if app.config["PORTAL_ENV"] == "development":
        print(f" * Sign in as alice@acme.com (or any sample account in the README) with the password "
              f"{app.config['SEED_PASSWORD']}", flush=True)
    try:
        # The portal logs one line per request (portal.requestlog); werkzeug's own access line would
        # be a second one.
        app.run(host=host, port=port, debug=False, use_reloader=False, threaded=True,
                request_handler=QuietRequestHandler)
    finally:
        worker.stop(timeout=app.config["WORKER_SHUTDOWN_SECONDS"] + 5)
        if demo is not None:
            demo.__exit__(None, None, None)


def _sso_demo_provider(app):
    """SSO_DEMO_PROVIDER=1: the loopback OpenID provider Acme's sample connection points at
    (portal/sso/sample.py); enable the connection at /t/acme-corp/settings/sso to use it."""
    if os.environ.get("SSO_DEMO_PROVIDER") != "1" or app.config["PORTAL_ENV"] == "production":
        return None
    from .sso.sample import DEMO_ISSUER, demo_provider
    with app.app_context():
        demo = demo_provider()
        demo.__enter__()
    print(f" * Demo single sign-on provider on {DEMO_ISSUER} (enable “Acme demo provider” at "
          "/t/acme-corp/settings/sso, then sign in as bob@acme.com or nora@acme.com)", flush=True)
    return demo


class QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        pass


if __name__ == "__main__":
    main()
