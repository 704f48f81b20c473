"""Extension objects, initialised by the app factory."""
from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect, FlaskForm
from flask_wtf.csrf import _FlaskFormCSRF
from wtforms.csrf.core import CSRFTokenField
from sqlalchemy import DateTime, Enum, MetaData, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .database.replica import RoutingSession

# Named constraints, so every migration can be downgraded.
NAMING = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# Its session sends a `database.replica.reads()` block's statements to the read replica.
db = SQLAlchemy(model_class=Base, session_options={"class_": RoutingSession})
migrate = Migrate()
csrf = CSRFProtect()


class _CSRFTokenFieldWithoutId(CSRFTokenField):
    """A page holds several forms, each with its hidden CSRF field: with WTForms' default id
    (the field's name) every one was `id="csrf_token"`, an id used many times on one page."""

    def __call__(self, **kwargs):
        kwargs.setdefault("id", False)  # html_params leaves a False attribute out
        return super().__call__(**kwargs)


class _FormCSRF(_FlaskFormCSRF):
    field_class = _CSRFTokenFieldWithoutId


FlaskForm.Meta.csrf_class = _FormCSRF  # every FlaskForm of the portal, one place
login_manager = LoginManager()
htmx = HTMX()
# Storage from RATELIMIT_STORAGE_URI: memory:// per process by default, redis://... to share across processes.
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def pg_enum(py_enum: type[enum.Enum], name: str) -> Enum:
    """A PostgreSQL enum type storing the Python enum's values."""
    return Enum(py_enum, name=name, values_callable=lambda e: [m.value for m in e],
                validate_strings=True)


def uuid_pk() -> Mapped[UUID]:
    return mapped_column(primary_key=True, server_default=text("gen_random_uuid()"))


def jsonb(column_name: str | None = None):
    """A NOT NULL JSONB column defaulting to {}; `column_name` when the attribute differs."""
    args = (column_name, JSONB) if column_name else (JSONB,)
    return mapped_column(*args, nullable=False, server_default=text("'{}'::jsonb"))


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Kept current by the set_updated_at trigger written in the migrations.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
