"""ORM instances from rows a statement already returned (see the request-context functions
of migration 0005), without a query of their own."""
from __future__ import annotations

from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from ..extensions import db


def attach(model, **values):
    """`model(**values)` as if a query had loaded it into this request's session: persistent,
    with no pending changes, so a later change is flushed as an UPDATE. Columns not given load
    on first access. An instance the session already holds is returned as it is."""
    mapper = model.__mapper__
    key = identity_key(model, tuple(values[column.key] for column in mapper.primary_key))
    existing = db.session.identity_map.get(key)
    if existing is not None:
        return existing
    instance = model(**values)
    make_transient_to_detached(instance)
    db.session.add(instance)
    return instance
