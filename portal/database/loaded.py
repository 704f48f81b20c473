"""ORM instances from rows a statement already returned (see the request-context functions
of migration 0005), without a query of their own; and `Loaded`, the same row as plain values
that makes its ORM instance only when something needs one."""
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


class Loaded:
    """A row of `model` as the request-context function returned it: its columns as plain
    values. Every request reads a few of them (a tenant's name and status, a membership's
    role); making a mapped instance costs more than the rest of the request's Python work on
    the list page (instrumented constructor, identity map, expiry at commit), so it is made
    only when needed: on the first read of anything else (another column, a relationship),
    on any assignment, or through `.orm` for session calls (`db.session.delete(x.orm)`).
    From then on every read goes to that instance, so a change made through this object is
    seen by the next read. Subclasses name the model and may take over its plain or hybrid
    properties (`is_readable = Tenant.__dict__["is_readable"]`): they read the same names."""

    model: type
    __slots__ = ("_values", "_orm")

    def __init__(self, **values):
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_orm", None)

    @property
    def orm(self):
        if self._orm is None:
            object.__setattr__(self, "_orm", attach(self.model, **self._values))
        return self._orm

    def __getattr__(self, name):  # only for what the class itself does not hold
        if self._orm is None and name in self._values:
            return self._values[name]
        return getattr(self.orm, name)

    def __setattr__(self, name, value):
        setattr(self.orm, name, value)

    def __eq__(self, other):
        return _identity(self) == _identity(other)

    def __hash__(self):
        return hash(_identity(self))

    def __repr__(self):
        return f"<{self.model.__name__} {_identity(self)[1]} (loaded)>"


def _identity(obj) -> tuple | None:
    """(model, primary key) of a Loaded or a mapped instance: they are equal when these are."""
    model = obj.model if isinstance(obj, Loaded) else type(obj)
    mapper = getattr(model, "__mapper__", None)
    if mapper is None:
        return None
    return mapper.class_, tuple(getattr(obj, column.key) for column in mapper.primary_key)


def mapped(obj):
    """The mapped instance behind `obj` (a Loaded or already one), for session calls."""
    return obj.orm if isinstance(obj, Loaded) else obj
