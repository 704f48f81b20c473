"""Flask CLI commands beyond `flask db`."""
from __future__ import annotations

import click
from flask import Flask, current_app

from .extensions import db


def init_app(app: Flask) -> None:
    @app.cli.command("seed")
    def seed():
        """Load the sample tenants, users, sites and devices (once; never in production)."""
        if current_app.config["PORTAL_ENV"] == "production":
            raise click.ClickException("Refusing to load sample data in production (PORTAL_ENV=production).")
        from .seeding import load_sample
        created = load_sample(current_app.config["SEED_PASSWORD"])
        db.session.commit()
        click.echo("Sample data loaded." if created else "Sample data already present; nothing to do.")
