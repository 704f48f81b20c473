"""The device list: filters, prefix search, sorts and keyset pagination, in one statement.

Every query is bounded by the actor's site scope (TenantContext), so people without
`sites:see-all` only ever read the devices of the sites they are assigned to. Pages are keyset-paginated on (sort key..., id), each
sort served by a (tenant_id, key..., id) index, never OFFSET. Search is a prefix of the
name or of the serial number, case-insensitive: an index range on the generated
name_key/serial_key columns (lower-cased, "C" collation), since the embedded server has
no pg_trgm for '%term%'.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from flask import abort
from sqlalchemy import ARRAY, Select, and_, any_, bindparam, func, not_, or_, select, true, tuple_, union_all

from ..audit.models import AuditLog
from ..database.driver import all_rows, driver_sql
from ..extensions import db
from ..sites.models import Site, SiteAssignment
from ..sites.visibility import assigned_site_ids, may_see
from ..tenancy import TenantContext
from ..tenancy.queries import lock_tenant
from .models import Device, DeviceStatus, DeviceType

PAGE_SIZE = 50
SORTS = {"name": "Name", "status": "Status", "last_seen": "Last seen"}
DEFAULT_DIRECTION = {"name": "asc", "status": "asc", "last_seen": "desc"}
SEARCH_MAX = 100


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except (TypeError, ValueError):
        return None


def _enum(kind, value: str):
    try:
        return kind(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class ListState:
    """Everything the device list shows, read from (and written back to) the URL, so a
    refresh, the back button or a bookmark gives the same list. Unknown values are ignored."""
    q: str = ""
    site: UUID | None = None
    type: DeviceType | None = None
    status: DeviceStatus | None = None
    sort: str = "name"
    direction: str = "asc"
    after: str = ""
    before: str = ""  # the page before this cursor (Previous); `after` wins when both are given

    @classmethod
    def from_args(cls, args) -> ListState:
        sort = args.get("sort", "name")
        sort = sort if sort in SORTS else "name"
        direction = args.get("dir", "")
        direction = direction if direction in ("asc", "desc") else DEFAULT_DIRECTION[sort]
        return cls(q=" ".join(args.get("q", "").split())[:SEARCH_MAX], site=_uuid(args.get("site", "")),
                   type=_enum(DeviceType, args.get("type", "")), status=_enum(DeviceStatus, args.get("status", "")),
                   sort=sort, direction=direction, after=args.get("after", "")[:500],
                   before="" if args.get("after") else args.get("before", "")[:500])

    def args(self, **changes) -> dict:
        """URL arguments for this state (defaults left out), e.g. for url_for."""
        state = replace(self, **changes)
        out = {"q": state.q, "site": state.site, "type": state.type and state.type.value,
               "status": state.status and state.status.value,
               "sort": state.sort if state.sort != "name" else None,
               "dir": state.direction if state.direction != DEFAULT_DIRECTION[state.sort] else None,
               "after": state.after, "before": state.before}
        return {k: str(v) for k, v in out.items() if v}

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.site or self.type or self.status)


@dataclass
class Page:
    rows: list
    next_cursor: str | None
    state: ListState = field(default_factory=ListState)
    prev_cursor: str | None = None

    @property
    def first_cursor(self) -> str:
        """Where this page starts (the count request counts the rows before it)."""
        return cursor_of(self.rows[0], self.state.sort) if self.rows else ""


def _sort_columns(sort: str) -> tuple:
    if sort == "status":
        return (Device.status, Device.name_key, Device.id)
    if sort == "last_seen":
        return (Device.last_seen_key, Device.id)
    return (Device.name_key, Device.id)


def _encode(values: tuple) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else str(v) for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: str, sort: str) -> tuple | None:
    """The position after which the next page starts; None (first page) for anything malformed."""
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if "\x00" in json.dumps(plain):  # PostgreSQL text cannot hold NUL: a forged cursor
            return None
        if sort == "status":
            return DeviceStatus(plain[0]), str(plain[1]), UUID(plain[2])
        if sort == "last_seen":
            return datetime.fromisoformat(plain[0]), UUID(plain[1])
        return str(plain[0]), UUID(plain[1])
    except (ValueError, TypeError, IndexError, KeyError, json.JSONDecodeError):
        return None


def readable_cursor(cursor: str, sort: str) -> bool:
    """Whether `cursor` is a position of the list sorted by `sort` (the API refuses others)."""
    return _decode(cursor, sort) is not None


def prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """[low, high) of the strings starting with `prefix`: the prefix, and the prefix with its
    last character incremented (None: no upper bound). In the "C" collation byte order is
    code point order, so this range is exactly the prefix's and an index can scan it."""
    last = ord(prefix[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:  # no surrogates in UTF-8: skip to the next valid code point
        last = 0xE000
    return prefix, (prefix[:-1] + chr(last) if last <= 0x10FFFF else None)


LIST_COLUMNS = (Device.id, Device.name, Device.type, Device.serial_number, Device.status, Device.site_id,
                Device.firmware_version, Device.last_seen_at, Device.name_key, Device.last_seen_key)
KEY_NAMES = {"name": ("name_key", "id"), "status": ("status", "name_key", "id"), "last_seen": ("last_seen_key", "id")}


@dataclass(frozen=True)
class Shape:
    """What decides the SQL text of a list statement; the values are bound at execution.
    Statements are built once per shape (building the search one costs more than running it)."""
    sees_all: bool
    sort: str
    descending: bool
    site: bool
    type: bool
    status: bool
    search: bool
    bounded: bool
    positioned: bool
    limit: int
    columns: tuple[str, ...]  # Device attribute names
    client_sites: bool = False  # an API client restricted to sites (its list, not assignments)


def _param(name: str, column):
    return bindparam(name, type_=column.type)


def _prefix(column, shape: Shape):
    low = column >= _param("low", column)
    return and_(low, column < _param("high", column)) if shape.bounded else low


def _filtered(shape: Shape) -> Select:
    """The list's columns and its site's name, with the filters (not search, not visibility)."""
    stmt = (select(*(getattr(Device, name) for name in shape.columns), Site.name.label("site_name"))
            .join(Site, and_(Site.tenant_id == Device.tenant_id, Site.id == Device.site_id))
            .where(Device.tenant_id == _param("tenant_id", Device.tenant_id)))
    if shape.site:
        stmt = stmt.where(Device.site_id == _param("site", Device.site_id))
    if shape.type:
        stmt = stmt.where(Device.type == _param("type", Device.type))
    if shape.status:
        stmt = stmt.where(Device.status == _param("status", Device.status))
    return stmt


def _ordered(stmt: Select, shape: Shape) -> Select:
    """Keyset: the rows after the position (p0, p1, ...) in list order, at most `limit`."""
    columns = _sort_columns(shape.sort)
    if shape.positioned:
        key = tuple_(*columns)
        position = tuple_(*(_param(f"p{i}", c) for i, c in enumerate(columns)))
        stmt = stmt.where(key < position if shape.descending else key > position)
    return stmt.order_by(*(c.desc() if shape.descending else c.asc() for c in columns)).limit(shape.limit)


def _merged(branches, shape: Shape) -> Select:
    """The first `limit` rows, in list order, of branches that are each already ordered and limited."""
    rows = (branches[0] if len(branches) == 1 else union_all(*branches)).subquery("branch")
    keys = [rows.c[name] for name in KEY_NAMES[shape.sort]]
    return select(*rows.c).order_by(*(k.desc() if shape.descending else k.asc() for k in keys)).limit(shape.limit)


@lru_cache(maxsize=2048)  # about 600 list shapes (filters x sorts x search x viewer) plus export batches
def _statement(shape: Shape) -> Select:
    """A list statement shaped so that every part is an index range scan in list order that
    stops after `limit` rows, whatever the tenant's size:

    - search: the name-prefix matches and the serial-prefix matches (that are not name
      matches) are two branches, merged. As one OR, the planner would walk the name index
      filtering, through every row before a prefix that sorts late;
    - without `sites:see-all`: one branch per site they are assigned to (LATERAL), each on the
      (tenant_id, site_id, ...) index, merged, rather than the whole tenant filtered by site.
    """
    if not shape.sees_all:
        if shape.client_sites:
            sites = select(Site.id.label("site_id")).where(
                Site.tenant_id == _param("tenant_id", Site.tenant_id),
                Site.id == any_(bindparam("site_ids", type_=ARRAY(Site.id.type))))
            if shape.site:
                sites = sites.where(Site.id == _param("site", Site.id))
        else:
            sites = assigned_site_ids(_param("tenant_id", SiteAssignment.tenant_id),
                                      _param("user_id", SiteAssignment.user_id))
            if shape.site:
                sites = sites.where(SiteAssignment.site_id == _param("site", SiteAssignment.site_id))
        sites = sites.subquery("visible")
        per_site = _filtered(replace(shape, site=False)).where(Device.site_id == sites.c.site_id)
        if shape.search:
            per_site = per_site.where(or_(_prefix(Device.name_key, shape), _prefix(Device.serial_key, shape)))
        first = _ordered(per_site, shape).lateral("site_rows")
        return _merged([select(*first.c).select_from(sites).join(first, true())], shape)
    stmt = _filtered(shape)
    if not shape.search:
        return _ordered(stmt, shape)
    by_name = _ordered(stmt.where(_prefix(Device.name_key, shape)), shape)
    by_serial = _ordered(stmt.where(_prefix(Device.serial_key, shape), not_(_prefix(Device.name_key, shape))), shape)
    return _merged([by_name, by_serial], shape)


def list_statement(ctx: TenantContext, state: ListState, columns=LIST_COLUMNS, position: tuple | None = None,
                   limit: int = PAGE_SIZE + 1) -> tuple[Select, dict]:
    """One statement (and its values) for the rows of the list after `position`."""
    low, high = prefix_bounds(state.q.lower()) if state.q else ("", None)
    shape = Shape(ctx.sees_all, state.sort, state.direction == "desc", bool(state.site), bool(state.type),
                  bool(state.status), bool(state.q), high is not None, position is not None, limit,
                  tuple(c.key for c in columns), client_sites=not ctx.sees_all and ctx.client is not None)
    values = {"tenant_id": ctx.tenant_id, "user_id": None if ctx.sees_all else ctx.user_id,
              "site_ids": list(ctx.client.site_ids or ()) if shape.client_sites else None,
              "site": state.site, "type": state.type, "status": state.status,
              "low": low or None, "high": high}
    values.update({f"p{i}": v for i, v in enumerate(position or ())})
    return _statement(shape), {k: v for k, v in values.items() if v is not None}


def page_statement(ctx: TenantContext, state: ListState, page_size: int = PAGE_SIZE) -> tuple[Select, dict]:
    position = _decode(state.after, state.sort) if state.after else None
    return list_statement(ctx, state, LIST_COLUMNS, position, page_size + 1)


def cursor_of(row, sort: str) -> str:
    if sort == "status":
        return _encode((DeviceStatus(row.status).value, row.name_key, row.id))
    if sort == "last_seen":
        return _encode((row.last_seen_key, row.id))
    return _encode((row.name_key, row.id))


class ListRow(NamedTuple):
    """A device of the list, shaped once for its template (devices/_device_rows.html): the id as
    a string and the last-seen time in its two formats are computed here, once per row, rather
    than by method calls in the template (str() of a UUID twice, isoformat and strftime: about
    a third of the template's time). The template escapes every value as before."""
    id: str
    name: str
    type: str
    serial_number: str
    status: str
    site_id: UUID
    site_name: str
    firmware_version: str
    last_seen_at: datetime | None
    last_seen_iso: str  # "" when never seen
    last_seen_text: str  # YYYY-MM-DD HH:MM UTC
    name_key: str
    last_seen_key: datetime


_new_row = tuple.__new__  # ListRow(...) without the generated __new__'s Python call


def shape(row) -> ListRow:
    """A row of the list statement (LIST_COLUMNS and site_name) as a ListRow."""
    at = row.last_seen_at
    iso = at.isoformat() if at is not None else ""
    # The same text as at.strftime("%Y-%m-%d %H:%M UTC"), from the ISO string (strftime costs twice isoformat).
    text = f"{iso[:10]} {iso[11:16]} UTC" if iso else ""
    return _new_row(ListRow, (str(row.id), row.name, row.type, row.serial_number, row.status, row.site_id,
                              row.site_name, row.firmware_version or "", at, iso, text, row.name_key,
                              row.last_seen_key))


def page_from_rows(rows: list, state: ListState, page_size: int = PAGE_SIZE) -> Page:
    more = len(rows) > page_size
    rows = [shape(row) for row in rows[:page_size]]
    return Page(rows, cursor_of(rows[-1], state.sort) if more else None, state)


def device_page(ctx: TenantContext, state: ListState, page_size: int = PAGE_SIZE) -> Page:
    """One page of the list: one statement, whatever the page size or depth. A `before` page
    (Previous) is the same statement in the opposite order from that position, reversed."""
    position = _decode(state.before, state.sort) if state.before and not state.after else None
    if position is None:
        rows = _run(*page_statement(ctx, replace(state, before=""), page_size))
        page = page_from_rows(rows, state, page_size)
        page.prev_cursor = page.first_cursor if state.after and page.rows else None
        return page
    backwards = replace(state, direction=_opposite(state.direction), after="", before="")
    rows = _run(*list_statement(ctx, backwards, LIST_COLUMNS, position, page_size + 1))
    more_before = len(rows) > page_size
    rows = [shape(row) for row in reversed(rows[:page_size])]
    if not rows:  # nothing before that position (any more): the first page
        return device_page(ctx, replace(state, before=""), page_size)
    page = Page(rows, cursor_of(rows[-1], state.sort), state)
    page.prev_cursor = page.first_cursor if more_before else None
    return page


def _opposite(direction: str) -> str:
    return "asc" if direction == "desc" else "desc"


def _run(statement, values) -> list:
    # The hot path of the list: SQL compiled once per statement shape, run as driver SQL with
    # psycopg's named tuples (no cache-key walk of the statement tree, no ORM layer, no result
    # metadata per execution: database.driver). Values go to psycopg as they are: DeviceStatus
    # and DeviceType are StrEnums, sent as their values (a plain Enum would not be).
    return all_rows(db.session, *driver_sql(db.session, statement, values))


COUNT_CAP = 10_000
COUNT_COLUMNS = (Device.id, Device.status, Device.name_key, Device.last_seen_key)


def count_matches(ctx: TenantContext, state: ListState, first: str = "") -> tuple[int, int | None]:
    """(matches, rows before the page starting at cursor `first`), each counted exactly up to
    COUNT_CAP and as COUNT_CAP + 1 beyond: the list's own index range scans, stopped after
    COUNT_CAP + 1 rows, so a count never walks a whole big tenant. Its own request, after the
    rows: the list request keeps its two statements."""
    base = replace(state, after="", before="")
    total = _count(*list_statement(ctx, base, COUNT_COLUMNS, None, COUNT_CAP + 1))
    position = _decode(first, state.sort) if first else None
    if position is None:
        return total, 0 if not first else None
    backwards = replace(base, direction=_opposite(state.direction))
    return total, _count(*list_statement(ctx, backwards, COUNT_COLUMNS, position, COUNT_CAP + 1))


def _count(statement, values) -> int:
    return db.session.scalar(select(func.count()).select_from(statement.subquery("counted")), values)


def iter_devices(ctx: TenantContext, state: ListState, columns, batch: int = 1000):
    """Every device of a filter, batch by batch (keyset), for exports: memory stays flat."""
    position = None
    while True:
        rows = db.session.execute(*list_statement(ctx, state, columns, position, batch)).all()
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1]
        position = tuple(getattr(last, name) for name in KEY_NAMES[state.sort])


def get_device(ctx: TenantContext, device_id: UUID, *, for_update: bool = False) -> Device | None:
    stmt = select(Device).where(Device.tenant_id == ctx.tenant_id, Device.id == device_id,
                                may_see(ctx, Device.site_id))
    if for_update:
        stmt = _for_change(ctx, stmt)
    return db.session.scalar(stmt)


def _for_change(ctx: TenantContext, stmt):
    """Devices about to change: a change may bring a decommissioned device back, which counts it
    against the plan under the tenant's lock, and the lock order (database.conflicts) puts the
    tenant before its rows. So the tenant first, then the devices (NO KEY: their id stays)."""
    lock_tenant(ctx.tenant)
    return stmt.with_for_update(key_share=True)


def get_device_or_404(ctx: TenantContext, device_id: UUID, *, for_update: bool = False) -> Device:
    """A device of this tenant at a site the actor may see; anything else is the same 404."""
    if (device := get_device(ctx, device_id, for_update=for_update)) is not None:
        return device
    if ctx.sees_all:
        abort(404, f"There is no such device in {ctx.tenant.name}.")
    # The same words whether the device exists or not: nothing of what they may not see.
    abort(404, f"There is no such device in {ctx.tenant.name} that you can see. You see the devices of the sites "
               f"you are assigned to: if you were removed from its site, ask an owner or admin of {ctx.tenant.name}.")


def visible_devices(ctx: TenantContext, ids, *, for_update: bool = False) -> list[Device]:
    stmt = select(Device).where(Device.tenant_id == ctx.tenant_id, Device.id.in_(list(ids)),
                                may_see(ctx, Device.site_id)).order_by(Device.id)
    if for_update:
        stmt = _for_change(ctx, stmt)
    return list(db.session.scalars(stmt))


def device_history(ctx: TenantContext, device: Device, limit: int = 20) -> list[AuditLog]:
    """The latest audit rows of one device (tenant-leading index on the resource)."""
    return list(db.session.scalars(
        select(AuditLog).where(AuditLog.tenant_id == ctx.tenant_id, AuditLog.resource_type == "device",
                               AuditLog.resource_id == str(device.id))
        .order_by(AuditLog.created_at.desc()).limit(limit)))


def count_by_status(ctx: TenantContext) -> dict[DeviceStatus, int]:
    """Device counts by status over the sites the actor may see (the dashboard)."""
    rows = db.session.execute(select(Device.status, func.count()).where(
        Device.tenant_id == ctx.tenant_id, may_see(ctx, Device.site_id)).group_by(Device.status))
    return dict(rows.all())
