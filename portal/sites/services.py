"""Site rules: create, edit, archive, restore and delete sites; assign members to them.

Services take the request's TenantContext (tenant and actor) explicitly, write their audit row (before/after)
in the same transaction and never commit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal
from uuid import UUID

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert

from .. import audit
from ..accounts.models import User
from ..extensions import db
from ..notifications import Kind, actor_name, notify
from ..rules import RuleViolation
from ..tenancy import TenantContext
from ..tenancy.limits import require_room
from ..tenancy.models import Membership
from ..tenancy.queries import lock_tenant
from ..timezones import is_timezone
from .models import Site, SiteAssignment
from .queries import site_device_count, site_task_count

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CONTACT_FIELDS = ("name", "phone", "email")


@dataclass
class SiteData:
    """What a user may set on a site; metadata keys other than these two are kept as they are."""
    name: str
    timezone: str = "UTC"
    address: str | None = None
    latitude: Decimal | None = None
    longitude: Decimal | None = None
    operating_hours: dict[str, str] = field(default_factory=dict)  # weekday -> "HH:MM-HH:MM"
    contact: dict[str, str] = field(default_factory=dict)  # name, phone, email


def snapshot(site: Site) -> dict:
    return {"name": site.name, "address": site.address,
            "latitude": str(site.latitude) if site.latitude is not None else None,
            "longitude": str(site.longitude) if site.longitude is not None else None,
            "timezone": site.timezone, "metadata": site.meta,
            "archived_at": site.archived_at.isoformat() if site.archived_at else None}


def _check(ctx: TenantContext, data: SiteData, site: Site | None = None) -> None:
    if not is_timezone(data.timezone):
        raise RuleViolation(f"{data.timezone[:64]} is not a known IANA time zone.", field="timezone")
    if (data.latitude is None) != (data.longitude is None):
        raise RuleViolation("Give both latitude and longitude, or neither.", field="latitude")
    clash = select(Site.id).where(Site.tenant_id == ctx.tenant_id, func.lower(Site.name) == data.name.lower())
    if site is not None:
        clash = clash.where(Site.id != site.id)
    if db.session.scalar(clash) is not None:
        raise RuleViolation(f"A site named {data.name} already exists.", field="name")


def _apply(site: Site, data: SiteData) -> None:
    site.name, site.address, site.timezone = data.name, data.address or None, data.timezone
    site.latitude, site.longitude = data.latitude, data.longitude
    meta = {k: v for k, v in (site.meta or {}).items() if k not in ("operating_hours", "contact")}
    hours = {day: data.operating_hours[day] for day in WEEKDAYS if data.operating_hours.get(day)}
    contact = {k: data.contact[k] for k in CONTACT_FIELDS if data.contact.get(k)}
    if hours:
        meta["operating_hours"] = hours
    if contact:
        meta["contact"] = contact
    site.meta = meta


def active_sites(tenant_id: UUID) -> int:
    """Sites that count against the plan: every one not archived."""
    return db.session.scalar(select(func.count()).select_from(Site).where(
        Site.tenant_id == tenant_id, Site.archived_at.is_(None))) or 0


def _room_for_a_site(ctx: TenantContext) -> None:
    lock_tenant(ctx.tenant)  # counted and created under the tenant's lock: no two pass the limit together
    require_room(ctx.tenant, "max_sites", active_sites(ctx.tenant_id), field="name")


def create_site(ctx: TenantContext, data: SiteData) -> Site:
    if not ctx.sees_all:
        # A new site is nobody's assignment yet: the database shows it (and so lets it be written
        # and read back) only to those who see every site.
        raise RuleViolation("Only someone who sees every site can create one: you see only the sites you are "
                            "assigned to.", field="name")
    _check(ctx, data)
    _room_for_a_site(ctx)
    site = Site(tenant_id=ctx.tenant_id)
    _apply(site, data)
    db.session.add(site)
    db.session.flush()  # the audit row names the new site's id
    audit.record(ctx.tenant_id, ctx.user_id, "site.create", "site", site.id, after=snapshot(site))
    return site


def update_site(ctx: TenantContext, site: Site, data: SiteData) -> Site:
    _check(ctx, data, site)
    before = snapshot(site)
    _apply(site, data)
    after = snapshot(site)
    if after != before:
        audit.record(ctx.tenant_id, ctx.user_id, "site.update", "site", site.id, before=before, after=after)
    return site


def archive_site(ctx: TenantContext, site: Site) -> Site:
    if site.archived_at is not None:
        raise RuleViolation(f"{site.name} is already archived.")
    before = snapshot(site)
    site.archived_at = datetime.now(dt_timezone.utc)
    audit.record(ctx.tenant_id, ctx.user_id, "site.archive", "site", site.id, before=before, after=snapshot(site))
    return site


def restore_site(ctx: TenantContext, site: Site) -> Site:
    if site.archived_at is None:
        raise RuleViolation(f"{site.name} is not archived.")
    _room_for_a_site(ctx)
    before = snapshot(site)
    site.archived_at = None
    audit.record(ctx.tenant_id, ctx.user_id, "site.restore", "site", site.id, before=before, after=snapshot(site))
    return site


def delete_site(ctx: TenantContext, site: Site) -> None:
    """Only an empty site is deleted; a site with devices is archived instead, so its
    devices keep their history (the foreign key RESTRICTs too)."""
    devices = site_device_count(site)
    if devices:
        raise RuleViolation(f"{site.name} still has {devices} device{'s' if devices != 1 else ''}: "
                            "move them first, or archive the site instead.")
    tasks = site_task_count(site)
    if tasks:
        raise RuleViolation(f"{site.name} has {tasks} task{'s' if tasks != 1 else ''}: archive the site instead, "
                            "so they keep their place.")
    audit.record(ctx.tenant_id, ctx.user_id, "site.delete", "site", site.id, before=snapshot(site))
    db.session.delete(site)  # its assignments go with it (ON DELETE CASCADE)


def assign_user_to_site(ctx: TenantContext, site: Site, user_id: UUID) -> bool:
    """Give a member access to a site. True when it was not assigned yet."""
    member = db.session.scalar(select(Membership).where(Membership.tenant_id == ctx.tenant_id,
                                                        Membership.user_id == user_id))
    if member is None:
        raise RuleViolation("Only members of this organization can be assigned to its sites.")
    if site.archived_at is not None:
        raise RuleViolation(f"{site.name} is archived: restore it before assigning members.")
    # ON CONFLICT: two managers assigning the same member at once is not an error.
    assigned = db.session.execute(
        insert(SiteAssignment).values(tenant_id=ctx.tenant_id, site_id=site.id, user_id=user_id, assigned_by=ctx.user_id)
        .on_conflict_do_nothing(constraint="uq_user_site_assignments_tenant_id_site_id_user_id")
        .returning(SiteAssignment.id, SiteAssignment.assigned_at)).first()
    if assigned is None:
        return False
    audit.record(ctx.tenant_id, ctx.user_id, "site.assign", "site_assignment", assigned.id,
                 after={"site_id": str(site.id), "site": site.name, "user_id": str(user_id),
                        "email": member.user.email, "assigned_by": str(ctx.user_id),
                        "assigned_at": assigned.assigned_at.isoformat()})
    _tell(ctx, site, user_id, Kind.SITE_ASSIGNED, f"/t/{ctx.tenant.slug}/sites/{site.id}")
    return True


def _tell(ctx: TenantContext, site: Site, user_id: UUID, kind: Kind, link: str) -> None:
    if user_id != ctx.user_id:
        notify(ctx.tenant_id, [user_id], kind, {"actor": actor_name(ctx), "site": site.name,
                                                "tenant": ctx.tenant.name}, link)


def unassign_user_from_site(ctx: TenantContext, site: Site, user_id: UUID) -> bool:
    """Take a member's access to a site away. True when they were assigned."""
    removed = db.session.execute(
        delete(SiteAssignment).where(SiteAssignment.tenant_id == ctx.tenant_id, SiteAssignment.site_id == site.id,
                                     SiteAssignment.user_id == user_id)
        .returning(SiteAssignment.id, SiteAssignment.assigned_by, SiteAssignment.assigned_at)).first()
    if removed is None:
        return False
    email = db.session.scalar(select(User.email).where(User.id == user_id))
    audit.record(ctx.tenant_id, ctx.user_id, "site.unassign", "site_assignment", removed.id,
                 before={"site_id": str(site.id), "site": site.name, "user_id": str(user_id), "email": email,
                         "assigned_by": str(removed.assigned_by) if removed.assigned_by else None,
                         "assigned_at": removed.assigned_at.isoformat()})
    _tell(ctx, site, user_id, Kind.SITE_UNASSIGNED, f"/t/{ctx.tenant.slug}/")
    return True
