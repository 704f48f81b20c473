"""Reading sites: always within what the actor may see (visibility.py), keyset-paginated by name."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from uuid import UUID

from flask import abort
from sqlalchemy import String, and_, bindparam, cast, column, func, or_, select, table
from sqlalchemy.orm import aliased, contains_eager

from ..accounts.models import User
from ..database.driver import driver_sql
from ..database.paging import Position, position
from ..database.search import contains_pattern
from ..extensions import db
from ..tenancy.models import Membership
from .models import Site, SiteAssignment
from ..tenancy import TenantContext
from .visibility import assigned_site_ids, may_see

PAGE_SIZE = 50

# The devices at a site, read from the table that references sites rather than through the
# devices area's models: devices depend on sites (a device is at a site), never the reverse.
DEVICES = table("devices", column("tenant_id"), column("site_id"), column("id"), column("name"),
                column("name_key"), column("type"), column("serial_number"), column("status"))
# Tasks name sites too (the tasks area depends on sites, never the reverse).
TASKS = table("tasks", column("tenant_id"), column("site_id"))


def site_task_count(site: Site) -> int:
    return db.session.scalar(select(func.count()).select_from(TASKS).where(
        TASKS.c.tenant_id == site.tenant_id, TASKS.c.site_id == site.id)) or 0


def _device_count():
    return (select(func.count()).select_from(DEVICES)
            .where(DEVICES.c.tenant_id == Site.tenant_id, DEVICES.c.site_id == Site.id)
            .correlate(Site).scalar_subquery())


def site_page(ctx: TenantContext, *, after: str = "", before: str = "",
              archived: bool = False) -> tuple[list, str | None, str | None, Position]:
    """(site, device count) rows by name, keyset-paged both ways (names are unique in a tenant):
    the rows after `after`, or those before `before`; active sites or archived ones. Returns the
    rows, the cursors of the next and previous pages, and the page's position (one statement)."""
    shown = (Site.tenant_id == ctx.tenant_id, may_see(ctx, Site.id),
             Site.archived_at.is_not(None) if archived else Site.archived_at.is_(None))
    backwards = bool(before) and not after
    stmt = (select(Site, _device_count().label("devices")).where(*shown)
            .order_by(Site.name.desc() if backwards else Site.name).limit(PAGE_SIZE + 1))
    if after:
        stmt = stmt.where(Site.name > after)
    elif backwards:
        stmt = stmt.where(Site.name < before)
    rows = db.session.execute(stmt).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if backwards:
        rows.reverse()
        if not rows:  # nothing before it (any more): the first page
            return site_page(ctx, archived=archived)
        next_after, prev_before = rows[-1][0].name, (rows[0][0].name if more else None)
    else:
        next_after, prev_before = (rows[-1][0].name if more else None), (rows[0][0].name if after and rows else None)
    first = rows[0][0].name if rows else None
    pos = position(select(Site.name).where(*shown).order_by(Site.name), len(rows),
                   (lambda c: c.name < first) if first is not None else None)
    return rows, next_after, prev_before, pos


def visible_sites(ctx: TenantContext, *, include_archived: bool = False) -> list[Site]:
    """The sites a viewer may pick from (filters, move targets), by name."""
    stmt = select(Site).where(Site.tenant_id == ctx.tenant_id, may_see(ctx, Site.id)).order_by(Site.name)
    if not include_archived:
        stmt = stmt.where(Site.archived_at.is_(None))
    return list(db.session.scalars(stmt))


@lru_cache(maxsize=2)
def _choices_statement(sees_all: bool):
    """visible_sites' statement as (id as text, name), with bound values, built once per scope."""
    tenant_id, user_id = bindparam("tenant_id", type_=Site.tenant_id.type), bindparam("user_id",
                                                                                    type_=SiteAssignment.user_id.type)
    stmt = select(cast(Site.id, String).label("id"), Site.name).where(
        Site.tenant_id == tenant_id, Site.archived_at.is_(None)).order_by(Site.name)
    if not sees_all:
        stmt = stmt.where(Site.id.in_(assigned_site_ids(tenant_id, user_id)))
    return stmt


def site_choices_sql(ctx: TenantContext) -> tuple[str, dict]:
    """visible_sites as (id as text, name) rows, in driver SQL (psycopg placeholders
    `%(tenant_id)s`, `%(user_id)s`) with its values: the device page's filter and move menus,
    read with its plan room (devices.services.room_and_sites). Compiled once per scope
    (building the statement and 50 ORM instances cost ten times its query)."""
    values = {"tenant_id": ctx.tenant_id} if ctx.sees_all else {"tenant_id": ctx.tenant_id, "user_id": ctx.user_id}
    return driver_sql(db.session, _choices_statement(ctx.sees_all), values)


def get_site(ctx: TenantContext, site_id: UUID) -> Site | None:
    return db.session.scalar(select(Site).where(Site.tenant_id == ctx.tenant_id, Site.id == site_id,
                                                may_see(ctx, Site.id)))


def get_site_or_404(ctx: TenantContext, site_id: UUID) -> Site:
    """A site of this tenant that the viewer may see; anything else is the same 404."""
    return get_site(ctx, site_id) or abort(404, _not_visible(ctx))


def _not_visible(ctx: TenantContext) -> str:
    """The same words whether the site exists or not (see tasks.queries.not_visible)."""
    if ctx.sees_all:
        return f"There is no such site in {ctx.tenant.name}."
    return (f"There is no such site in {ctx.tenant.name} that you can see. You see only the sites you are "
            f"assigned to: if you were removed from it, ask an owner or admin of {ctx.tenant.name}.")


def site_device_count(site: Site) -> int:
    return db.session.scalar(select(func.count()).select_from(DEVICES).where(
        DEVICES.c.tenant_id == site.tenant_id, DEVICES.c.site_id == site.id)) or 0


def site_devices(site: Site, limit: int = 10) -> list:
    """The first devices of a site by name: rows of id, name, type, serial_number, status."""
    c = DEVICES.c
    return db.session.execute(select(c.id, c.name, c.type, c.serial_number, c.status)
                              .where(c.tenant_id == site.tenant_id, c.site_id == site.id)
                              .order_by(c.name_key, c.id).limit(limit)).all()


@dataclass
class Assignee:
    membership: Membership
    assignment: SiteAssignment | None
    assigned_by: User | None = None


MEMBERS_PAGE_SIZE = 50


@dataclass(frozen=True)
class MemberFilter:
    """The site page's member panel: a name/email search, everyone or only the assigned, and
    the keyset position (the last email shown). Readers only ever see the assigned."""
    q: str = ""
    assigned_only: bool = False
    after: str = ""

    @classmethod
    def from_values(cls, values, *, may_manage: bool) -> MemberFilter:
        return cls(q=(values.get("mq") or "").strip()[:100],
                   assigned_only=not may_manage or values.get("who") == "assigned",
                   after=(values.get("mafter") or "")[:320])

    def args(self, **changes) -> dict:
        """URL arguments for this state (empty ones left out)."""
        state = {"mq": self.q, "who": "assigned" if self.assigned_only else "", "mafter": self.after, **changes}
        return {k: v for k, v in state.items() if v}


def site_members(site: Site, members: MemberFilter = MemberFilter()) -> tuple[list[Assignee], str | None]:
    """A page of the tenant's members with their assignment to `site` (if any), by email, and
    the email to continue after (None on the last page)."""
    member, assigner = aliased(User), aliased(User)
    email = func.lower(member.email)
    stmt = (select(Membership, SiteAssignment, assigner, email.label("email_key"))
            .join(member, member.id == Membership.user_id)
            .outerjoin(SiteAssignment, and_(SiteAssignment.tenant_id == Membership.tenant_id,
                                            SiteAssignment.user_id == Membership.user_id,
                                            SiteAssignment.site_id == site.id))
            .outerjoin(assigner, assigner.id == SiteAssignment.assigned_by)
            .where(Membership.tenant_id == site.tenant_id)
            .options(contains_eager(Membership.user.of_type(member)))
            .order_by(email).limit(MEMBERS_PAGE_SIZE + 1))
    if members.assigned_only:
        stmt = stmt.where(SiteAssignment.site_id.is_not(None))
    if members.q:
        like = contains_pattern(members.q)
        stmt = stmt.where(or_(email.like(like), func.lower(member.name).like(like)))
    if members.after:
        stmt = stmt.where(email > func.lower(members.after))  # unique, case-insensitively
    rows = db.session.execute(stmt).all()
    more = len(rows) > MEMBERS_PAGE_SIZE
    rows = rows[:MEMBERS_PAGE_SIZE]
    # The position is the database's lower(email), the one it sorts and compares by (Python's
    # lower() differs for some letters, which would skip members).
    return [Assignee(m, a, by) for m, a, by, _ in rows], (rows[-1].email_key if more else None)


@dataclass
class SiteAccess:
    """The tenant's active sites and which of them each member is assigned to."""
    sites: list[Site]
    assigned: dict[UUID, set[UUID]] = field(default_factory=dict)

    def of(self, user_id: UUID) -> set[UUID]:
        return self.assigned.get(user_id, set())


def site_access(tenant_id: UUID, user_ids=None) -> SiteAccess:
    """Two statements whatever the number of members: the sites, then the assignments
    (of `user_ids` only, when given)."""
    sites = list(db.session.scalars(select(Site).where(Site.tenant_id == tenant_id, Site.archived_at.is_(None))
                                    .order_by(Site.name)))
    stmt = select(SiteAssignment.user_id, SiteAssignment.site_id).where(SiteAssignment.tenant_id == tenant_id)
    if user_ids is not None:
        stmt = stmt.where(SiteAssignment.user_id.in_(list(user_ids)))
    access = SiteAccess(sites)
    for user_id, site_id in db.session.execute(stmt):
        access.assigned.setdefault(user_id, set()).add(site_id)
    return access
