"""Device list queries: keyset pagination on (name, id), never OFFSET."""
from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import select, tuple_

from ..extensions import db
from ..sites.models import Site
from .models import Device

PAGE_SIZE = 50


@dataclass
class Page:
    rows: list
    next_cursor: str | None


def encode_cursor(name: str, id_: UUID) -> str:
    return f"{id_}:{name}"


def decode_cursor(cursor: str) -> tuple[str, UUID] | None:
    try:
        id_part, name = cursor.split(":", 1)
        return name, UUID(id_part)
    except ValueError:
        return None


def device_page(tenant_id: UUID, cursor: str = "", page_size: int = PAGE_SIZE) -> Page:
    stmt = (select(Device, Site.name.label("site_name"))
            .join(Site, (Site.tenant_id == Device.tenant_id) & (Site.id == Device.site_id))
            .where(Device.tenant_id == tenant_id)
            .order_by(Device.name, Device.id).limit(page_size + 1))
    position = decode_cursor(cursor) if cursor else None
    if position:
        stmt = stmt.where(tuple_(Device.name, Device.id) > tuple_(*position))
    rows = db.session.execute(stmt).all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    return Page(rows, encode_cursor(rows[-1][0].name, rows[-1][0].id) if more else None)
