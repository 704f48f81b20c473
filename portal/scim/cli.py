"""`flask scim-tokens create --tenant SLUG [--name NAME]`: prints a new SCIM token once, for
automation. The operator acts as the system (audit rows with no user)."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from ..database.context import tenant_scope
from ..extensions import db
from ..rules import RuleViolation
from ..tenancy import Permission, TenantContext
from ..tenancy.roles import Role
from ..tenants.models import Tenant
from . import services
from .resources import base_url

SYSTEM = Role("system", "System", "The command line", frozenset(Permission))


def init_app(app: Flask) -> None:
    group = AppGroup("scim-tokens", help="SCIM provisioning tokens.")

    @group.command("create")
    @click.option("--tenant", "slug", required=True, help="The organization's slug.")
    @click.option("--name", default="Command line", show_default=True, help="Who uses it, e.g. the identity provider.")
    def create(slug: str, name: str):
        """Create a token; it is printed once and stored only as a hash."""
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            raise click.ClickException(f"No organization with the slug {slug}.")
        with tenant_scope(db.session, tenant.id, actor="cli:scim.create-token"):
            try:
                _, secret = services.create_token(TenantContext(tenant, None, SYSTEM), name)
            except RuleViolation as exc:
                db.session.rollback()
                raise click.ClickException(exc.message) from None
            db.session.commit()
        with app.test_request_context():
            click.echo(f"SCIM base URL: {base_url()}", err=True)
        click.echo(secret)
        click.echo("The token is shown once: store it now.", err=True)

    app.cli.add_command(group)
