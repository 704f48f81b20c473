"""Email: the outbox, SMTP delivery after commit, `flask outbox`, and the development mailbox."""
from __future__ import annotations

import time

import click
from flask import Flask, current_app, g
from flask.cli import AppGroup

from ..extensions import db
from .outbox import deliver_due, deliver_one


def deliver_after_response(app: Flask, response):
    """After a committed request that queued mail, try to deliver it at once (outside the request)."""
    queued = g.get("outbox_queued")
    if queued and app.config["SMTP_URL"]:
        def _deliver():
            # This request's own messages, each in its own transaction (older ones are the worker's).
            with app.app_context():
                try:
                    for message_id in queued:
                        deliver_one(message_id)
                        db.session.commit()
                except Exception:  # the worker retries; never break a finished request
                    db.session.rollback()
                    app.logger.exception("immediate email delivery failed")
        response.call_on_close(_deliver)
    return response


def init_app(app: Flask) -> None:
    from ..jobs.queries import retry_hooks
    from .outbox import make_pending
    from .views import bp
    app.register_blueprint(bp)
    # Retrying a failed email from /admin/jobs makes its outbox message pending again.
    retry_hooks["mail.send"] = lambda args: make_pending(args.get("message_id"))

    group = AppGroup("outbox", help="The email outbox.")

    @group.command("deliver")
    @click.option("--loop", is_flag=True, help="Keep delivering (a worker process).")
    @click.option("--interval", default=5.0, show_default=True, help="Seconds between runs with --loop.")
    def deliver(loop: bool, interval: float):
        """Deliver due messages over SMTP_URL, with retries and backoff."""
        if not current_app.config["SMTP_URL"]:
            raise click.ClickException("SMTP_URL is not set: nothing can be delivered.")
        while True:
            counts = deliver_due()
            click.echo(f"sent={counts['sent']} retry={counts['retry']} failed={counts['failed']}")
            if not loop:
                break
            time.sleep(interval)

    app.cli.add_command(group)
