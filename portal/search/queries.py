"""What the palette finds, each kind through its own area's query and visibility rule: sites
through sites.visibility, devices through the device list's search (a prefix of the name or
serial number), tasks through the task list's, members through the member list's. A kind the
role may not list is not searched at all. At most LIMIT of each."""
from __future__ import annotations

from typing import NamedTuple

from flask import url_for
from sqlalchemy import func, select

from ..database.search import contains_pattern
from ..devices import queries as devices
from ..extensions import db
from ..members import services as members
from ..sites.models import Site
from ..sites.visibility import may_see
from ..tasks import queries as tasks
from ..tenancy import Permission, TenantContext
from . import pages as page_list

LIMIT = 5


class Hit(NamedTuple):
    label: str
    url: str
    hint: str  # a second line: the serial number and site, a status, an email


class Group(NamedTuple):
    kind: str  # "Pages", "Sites", ...
    hits: list[Hit]


def find_sites(ctx: TenantContext, query: str) -> list[Hit]:
    """Sites whose name contains `query`: a tenant has few sites (its plan bounds them)."""
    rows = db.session.execute(
        select(Site.id, Site.name, Site.address, Site.archived_at)
        .where(Site.tenant_id == ctx.tenant_id, may_see(ctx, Site.id),
               func.lower(Site.name).like(contains_pattern(query)))
        .order_by(Site.archived_at.is_not(None), Site.name).limit(LIMIT)).all()
    return [Hit(r.name, url_for("sites.show", site_id=r.id),
                "Archived" if r.archived_at is not None else (r.address or "Site")) for r in rows]


def find_devices(ctx: TenantContext, query: str) -> list[Hit]:
    page = devices.device_page(ctx, devices.ListState(q=query), page_size=LIMIT)
    return [Hit(r.name, url_for("devices.show", device_id=r.id), f"{r.serial_number} · {r.site_name} · {r.status}")
            for r in page.rows]


def find_tasks(ctx: TenantContext, query: str) -> list[Hit]:
    page = tasks.task_page(ctx, tasks.ListState(q=query, status="all"), page_size=LIMIT)
    return [Hit(r.title, url_for("tasks.show", task_id=r.id),
                " · ".join(str(v) for v in (r.status.replace("_", " "), r.site_name) if v)) for r in page.rows]


def find_members(ctx: TenantContext, query: str) -> list[Hit]:
    found, _, _ = members.list_members(ctx, query)
    return [Hit(m.user.display_name, url_for("members.index", q=m.user.email), m.user.email)
            for m in found[:LIMIT]]


KINDS = (("Sites", Permission.SITES_VIEW, find_sites), ("Devices", Permission.DEVICES_VIEW, find_devices),
         ("Tasks", Permission.TASKS_VIEW, find_tasks), ("Members", Permission.MEMBERS_VIEW, find_members))


def search(ctx: TenantContext, query: str) -> list[Group]:
    """The groups with hits, pages first; an empty query lists the pages only."""
    groups = [Group("Pages", [Hit(p.label, p.url, p.hint) for p in page_list.pages(ctx, query)])]
    if query:
        groups += [Group(kind, find(ctx, query)) for kind, needed, find in KINDS if ctx.can(needed)]
    return [g for g in groups if g.hits]
