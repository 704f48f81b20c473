"""`flask analytics partitions` and `flask analytics prune`: what the scheduled jobs do, by hand."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from ..extensions import db
from . import retention

analytics_cli = AppGroup("analytics", help="Analytics events: month partitions and retention.")


@analytics_cli.command("partitions")
@click.option("--months-ahead", type=click.IntRange(0, 24), default=retention.MONTHS_AHEAD, show_default=True,
              help="Months to create beyond the current one.")
def partitions(months_ahead: int):
    """Create this month's partition and the next ones (existing ones are left alone)."""
    made = retention.ensure_partitions(months_ahead=months_ahead)
    db.session.commit()
    names = retention.partitions()
    click.echo(f"{made} new partition(s); {len(names)} in all: {', '.join(names)}")


@analytics_cli.command("prune")
def prune():
    """Drop months past every plan's retention, delete each tenant's events past its plan's."""
    dropped, rows = retention.prune()
    click.echo(f"Dropped {len(dropped)} month partition(s){': ' + ', '.join(dropped) if dropped else ''}; "
               f"deleted {rows} event(s) past their plan's retention.")
