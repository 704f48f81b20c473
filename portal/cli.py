"""Flask CLI commands beyond `flask db`."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .extensions import db


def init_app(app: Flask) -> None:
    from .database import commands
    commands.init_app(app)

    @app.cli.command("seed")
    def seed():
        """Load the sample tenants, users, sites and devices (once; never in production)."""
        if current_app.config["PORTAL_ENV"] == "production":
            raise click.ClickException("Refusing to load sample data in production (PORTAL_ENV=production).")
        from .seeding import load_sample
        created = load_sample(current_app.config["SEED_PASSWORD"])
        db.session.commit()
        click.echo("Sample data loaded." if created else "Sample data already present; nothing to do.")

    users = AppGroup("users", help="Accounts.")

    @users.command("disable")
    @click.argument("email")
    def disable(email: str):
        """Suspend an account: it cannot sign in and all its sessions end now."""
        _set_active(email, False)

    @users.command("enable")
    @click.argument("email")
    def enable(email: str):
        """Reactivate a suspended account."""
        _set_active(email, True)

    @users.command("purge")
    @click.option("--email", default=None, help="Erase this account now, whatever its status or grace period.")
    @click.option("--due", is_flag=True, help="Erase every account whose deletion grace period has ended.")
    def purge(email: str | None, due: bool):
        """Erase deleted accounts' personal data (what the worker's daily accounts.purge does)."""
        from .profile.deletion import purge as purge_one
        from .profile.deletion import purge_due
        from .rules import RuleViolation
        if bool(email) == due:
            raise click.UsageError("Give either --email EMAIL or --due.")
        if due:
            purged, refused = purge_due()
            for user_id, why in refused.items():
                click.echo(f"Kept {user_id}: {why}", err=True)
            click.echo(f"Erased {len(purged)} account{'s' if len(purged) != 1 else ''}.")
            return
        from .accounts.services import find_user_by_email
        user = find_user_by_email(email)
        if user is None:
            raise click.ClickException(f"No account for {email}.")
        try:
            purge_one(user, reason="Erased on demand (flask users purge).")
        except RuleViolation as exc:
            db.session.rollback()
            raise click.ClickException(exc.message) from exc
        db.session.commit()
        click.echo(f"Erased {email}: the account is now {user.email}.")

    app.cli.add_command(users)

    from .audit.cli import audit_cli
    app.cli.add_command(audit_cli)
    from .analytics.cli import analytics_cli
    app.cli.add_command(analytics_cli)

    from .admin.cli import tenants_cli
    app.cli.add_command(tenants_cli)


def _set_active(email: str, active: bool) -> None:
    from .accounts.services import find_user_by_email
    from .security.services import set_active
    user = find_user_by_email(email)
    if user is None:
        raise click.ClickException(f"No account for {email}.")
    ended = set_active(user, active)
    db.session.commit()
    click.echo(f"{user.email} is {'enabled' if active else f'disabled; {ended} session(s) ended'}.")
