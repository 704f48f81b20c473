"""`flask integrations ...`: create a webhook endpoint for automation (its signing secret is
printed once), and run loopback receivers for the sample integrations in development."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from ..database.context import tenant_scope
from ..extensions import db
from ..rules import RuleViolation
from ..tenancy import Permission, TenantContext
from ..tenancy.roles import Role
from ..tenants.models import Tenant
from . import services

SYSTEM = Role("system", "System", "The command line", frozenset(Permission))


def init_app(app: Flask) -> None:
    group = AppGroup("integrations", help="Integrations: webhooks, JSON sources, inbound events.")

    @group.command("create-webhook")
    @click.option("--tenant", "slug", required=True, help="The organization's slug.")
    @click.option("--url", required=True, help="The endpoint that receives the events.")
    @click.option("--events", required=True, help='Space-separated, e.g. "device.status_changed task.completed".')
    @click.option("--name", default=None, help="Defaults to the URL's host.")
    def create_webhook(slug: str, url: str, events: str, name: str | None):
        """Create an enabled webhook endpoint; prints its id and its signing secret (once)."""
        from urllib.parse import urlsplit
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            raise click.ClickException(f"No organization with the slug {slug}.")
        with tenant_scope(db.session, tenant.id, actor="cli:integrations.create-webhook"):
            try:
                integration, secret = services.create(
                    TenantContext(tenant, None, SYSTEM), "webhook", name or f"Webhook to {urlsplit(url).hostname or url}",
                    {"url": url, "events": events.split()})
            except RuleViolation as exc:
                db.session.rollback()
                raise click.ClickException(exc.message) from None
            integration_id = integration.id
            db.session.commit()
        click.echo(f"id: {integration_id}")
        click.echo(f"signing_secret: {secret}")
        click.echo("The signing secret is shown once: store it now.", err=True)

    @group.command("sample-receivers")
    @click.option("--port", default=8765, show_default=True, help="The first of the ports (webhook, JSON source).")
    def sample_receivers(port: int):
        """Serve, on 127.0.0.1, what the sample integrations point at: a webhook receiver that
        verifies every delivery's signature (and prints it), and a paged JSON source."""
        from .receivers import serve_samples
        serve_samples(current_app._get_current_object(), port)

    app.cli.add_command(group)
