"""`flask api-clients create --tenant SLUG --name NAME --scopes "devices:view devices:write"`:
prints the client id and secret once, for automation. `flask oauth-apps create --tenant SLUG
--name NAME --redirect-uri URI [--redirect-uri URI ...] --scopes "..." [--public]` registers an
app for the authorization code flow: its client id, and a confidential app's secret, once.
The operator acts as the system (audit rows with no user), so any catalogue scope may be given."""
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
from . import grants, services

SYSTEM = Role("system", "System", "The command line", frozenset(Permission))


def init_app(app: Flask) -> None:
    group = AppGroup("api-clients", help="API clients (OAuth 2.0 client credentials).")

    @group.command("create")
    @click.option("--tenant", "slug", required=True, help="The organization's slug.")
    @click.option("--name", required=True)
    @click.option("--scopes", required=True, help='Space-separated, e.g. "devices:view devices:write".')
    def create(slug: str, name: str, scopes: str):
        """Create a client; its secret is printed once and stored only as a hash."""
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            raise click.ClickException(f"No organization with the slug {slug}.")
        with tenant_scope(db.session, tenant.id, actor="cli:api.create-client"):
            try:
                client, secret = services.create_client(TenantContext(tenant, None, SYSTEM),
                                                        services.ClientData(name, scopes.split()))
            except RuleViolation as exc:
                db.session.rollback()
                raise click.ClickException(exc.message) from None
            client_id = client.id
            db.session.commit()
        click.echo(f"client_id: {client_id}")
        click.echo(f"client_secret: {secret}")
        click.echo("The secret is shown once: store it now.", err=True)

    app.cli.add_command(group)

    apps = AppGroup("oauth-apps", help="OAuth apps (authorization code with PKCE).")

    @apps.command("create")
    @click.option("--tenant", "slug", required=True, help="The organization's slug.")
    @click.option("--name", required=True)
    @click.option("--redirect-uri", "redirect_uris", required=True, multiple=True,
                  help="Exact redirect URI; https, or http to 127.0.0.1/localhost. Repeat for several.")
    @click.option("--scopes", required=True, help='Space-separated, e.g. "devices:view sites:view".')
    @click.option("--public", is_flag=True, help="A public app (no secret; PKCE only), e.g. mobile or desktop.")
    def create_app(slug: str, name: str, redirect_uris: tuple[str, ...], scopes: str, public: bool):
        """Register an app; a confidential app's secret is printed once and stored only as a hash."""
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            raise click.ClickException(f"No organization with the slug {slug}.")
        with tenant_scope(db.session, tenant.id, actor="cli:api.create-app"):
            try:
                client, secret = grants.create_app(TenantContext(tenant, None, SYSTEM),
                                                   grants.AppData(name, list(redirect_uris), public, scopes.split()))
            except RuleViolation as exc:
                db.session.rollback()
                raise click.ClickException(exc.message) from None
            client_id = client.id
            db.session.commit()
        click.echo(f"client_id: {client_id}")
        if secret is not None:
            click.echo(f"client_secret: {secret}")
            click.echo("The secret is shown once: store it now.", err=True)

    app.cli.add_command(apps)
