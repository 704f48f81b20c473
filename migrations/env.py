"""Alembic environment: migrations run as the owner role (MIGRATION_DATABASE_URL)."""
from __future__ import annotations

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name and not logging.getLogger().handlers:
    # Only when run on its own: inside the portal, the app's logging (one line per request) stays.
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

target_metadata = current_app.extensions["migrate"].db.metadata


def migration_url() -> str:
    return current_app.config.get("MIGRATION_DATABASE_URL") or current_app.config["DATABASE_URL"]


# alembic_version belongs to Alembic, procrastinate_* to the job engine (migration 0007), not to the models.
from portal.database.validate import include_object  # noqa: E402


def run_migrations_offline() -> None:
    context.configure(url=migration_url(), target_metadata=target_metadata, literal_binds=True,
                      include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(migration_url(), poolclass=pool.NullPool)

    def skip_empty(ctx, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            logger.info("No changes in schema detected.")

    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True,
                          include_object=include_object, process_revision_directives=skip_empty,
                          # Migrations read the serving role to grant it privileges.
                          )
        with context.begin_transaction():
            context.run_migrations(app_role=current_app.config["DB_APP_ROLE"])
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
