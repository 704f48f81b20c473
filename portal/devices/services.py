"""Device rules: create, edit, move, change status, decommission (import: imports.py).

Services take the request's TenantContext (tenant, actor, permissions, site scope) explicitly,
read sites and devices within what the actor may see, write one audit row per device
changed, with before/after, in the same transaction, and never commit.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, or_, select

from .. import audit
from ..analytics.events import device_status_changed
from ..database.driver import all_rows
from ..extensions import db
from ..notifications import Kind, notify
from ..rules import RuleViolation
from ..sites.models import Site, SiteAssignment
from ..sites.queries import get_site, site_choices_sql
from ..tenancy import Permission, TenantContext
from ..tenancy.limits import require_room, room_left
from ..tenancy.models import Membership, MembershipStatus
from ..tenancy.roles import holds_condition
from ..tenancy.queries import lock_tenant
from .models import Device, DeviceStatus, DeviceType

META_FIELDS = ("specs", "configuration")
BULK_MAX = 500


@dataclass
class DeviceData:
    name: str
    type: DeviceType
    serial_number: str
    site_id: UUID
    status: DeviceStatus = DeviceStatus.OFFLINE
    firmware_version: str | None = None
    last_seen_at: datetime | None = None
    specs: dict[str, Any] | None = None
    configuration: dict[str, Any] | None = None


def snapshot(device: Device) -> dict:
    return {"name": device.name, "type": DeviceType(device.type).value, "serial_number": device.serial_number,
            "status": DeviceStatus(device.status).value, "site_id": str(device.site_id),
            "firmware_version": device.firmware_version,
            "last_seen_at": device.last_seen_at.isoformat() if device.last_seen_at else None,
            "metadata": device.meta}


def target_site(ctx: TenantContext, site_id: UUID | None) -> Site:
    """A site devices may be put at: one the actor sees, and not archived."""
    site = get_site(ctx, site_id) if site_id else None
    if site is None:
        raise RuleViolation("Choose one of your sites.", field="site_id")
    if site.archived_at is not None:
        raise RuleViolation(f"{site.name} is archived: restore it before putting devices there.", field="site_id")
    return site


def serial_taken(ctx: TenantContext, serial: str, *, except_id: UUID | None = None) -> bool:
    stmt = select(Device.id).where(Device.tenant_id == ctx.tenant_id, Device.serial_key == serial.lower())
    if except_id is not None:
        stmt = stmt.where(Device.id != except_id)
    return db.session.scalar(stmt) is not None


def _apply(device: Device, data: DeviceData) -> None:
    device.name, device.type, device.serial_number = data.name, data.type, data.serial_number
    device.status, device.site_id = data.status, data.site_id
    device.firmware_version, device.last_seen_at = data.firmware_version or None, data.last_seen_at
    meta = {k: v for k, v in (device.meta or {}).items() if k not in META_FIELDS}
    for key in META_FIELDS:
        if getattr(data, key):
            meta[key] = getattr(data, key)
    device.meta = meta


def in_service(tenant_id: UUID) -> int:
    """Devices that count against the plan: every one not decommissioned."""
    return db.session.scalar(select(func.count()).select_from(Device).where(
        Device.tenant_id == tenant_id, Device.status != DeviceStatus.DECOMMISSIONED)) or 0


# The list page's create buttons need only whether the plan is full: the count stops at the
# plan's limit (a full count of a 100,000-device tenant took 28 ms on every page view), and the
# limit comes in the same statement (the request's tenant row does not carry it).
_ROOM = """
SELECT t.max_devices AS allowed,
       (SELECT count(*) FROM (SELECT FROM devices d WHERE d.tenant_id = %(tenant_id)s AND d.status <> 'decommissioned'
                              LIMIT t.max_devices) counted) AS used
  FROM tenants t WHERE t.id = %(tenant_id)s"""


def room_and_sites(ctx: TenantContext, with_room: bool) -> tuple[dict | None, list]:
    """The device page's plan room (for those who may create devices) and its site menus'
    (id, name) rows, in one statement: one round trip and one plan less on every view of the
    page (the request plans every statement anew, `force_custom_plan`)."""
    sites_sql, values = site_choices_sql(ctx)
    if not with_room:
        return None, all_rows(db.session, sites_sql, values)
    rows = all_rows(db.session, f"SELECT r.allowed, r.used, s.id, s.name FROM ({_ROOM}) r "
                                f"LEFT JOIN LATERAL ({sites_sql}) s ON true ORDER BY s.name, s.id", values)
    room = room_left(ctx.tenant, "max_devices", rows[0].used, allowed=rows[0].allowed)
    return room, [(row.id, row.name) for row in rows if row.id is not None]


def room_for_devices(ctx: TenantContext, adding: int, field: str | None = None) -> None:
    lock_tenant(ctx.tenant)  # counted and created under the tenant's lock: no two pass the limit together
    require_room(ctx.tenant, "max_devices", in_service(ctx.tenant_id), adding, field)


def create_device(ctx: TenantContext, data: DeviceData) -> Device:
    target_site(ctx, data.site_id)
    if data.status != DeviceStatus.DECOMMISSIONED:
        room_for_devices(ctx, 1, "name")
    if serial_taken(ctx, data.serial_number):
        raise RuleViolation(f"A device with serial number {data.serial_number} already exists.",
                            field="serial_number")
    device = Device(tenant_id=ctx.tenant_id)
    _apply(device, data)
    db.session.add(device)
    db.session.flush()  # the audit row names the new device's id
    audit.record(ctx.tenant_id, ctx.user_id, "device.create", "device", device.id, after=snapshot(device))
    device_status_changed(ctx, [(device, None)])
    return device


def update_device(ctx: TenantContext, device: Device, data: DeviceData) -> Device:
    if data.site_id != device.site_id:
        target_site(ctx, data.site_id)
    if serial_taken(ctx, data.serial_number, except_id=device.id):
        raise RuleViolation(f"A device with serial number {data.serial_number} already exists.",
                            field="serial_number")
    if device.status == DeviceStatus.DECOMMISSIONED and data.status != DeviceStatus.DECOMMISSIONED:
        room_for_devices(ctx, 1, "status")  # back in service through an edit: it counts again
    before = snapshot(device)
    was = device.status
    _apply(device, data)
    after = snapshot(device)
    if after != before:
        audit.record(ctx.tenant_id, ctx.user_id, "device.update", "device", device.id, before=before, after=after)
        device_status_changed(ctx, [(device, before["status"])])  # nothing when the status stayed
    if device.status == DeviceStatus.ERROR and was != DeviceStatus.ERROR:
        db.session.flush()  # the site the fan-out reads is the one just saved
        tell_error(ctx, device)
    return device


def change_status(ctx: TenantContext, devices: list[Device], status: DeviceStatus) -> int:
    """Set the status of `devices` (already limited to what the actor sees). Decommissioning,
    or bringing a decommissioned device back, is for those who may edit devices."""
    if not ctx.can(Permission.DEVICES_WRITE) and (
            status == DeviceStatus.DECOMMISSIONED or any(d.status == DeviceStatus.DECOMMISSIONED for d in devices)):
        raise RuleViolation("Your role does not allow decommissioning devices or bringing them back.",
                            field="status")
    back = sum(1 for d in devices if d.status == DeviceStatus.DECOMMISSIONED and status != d.status)
    if back:
        room_for_devices(ctx, back, "status")  # back in service: they count again
    changes = []
    for device in devices:
        if device.status == status:
            continue
        before = snapshot(device)
        device.status = status
        audit.record(ctx.tenant_id, ctx.user_id, "device.status", "device", device.id, before=before,
                     after=snapshot(device))
        changes.append((device, before["status"]))
        if status == DeviceStatus.ERROR:
            tell_error(ctx, device)
    device_status_changed(ctx, changes)  # one statement for the whole selection
    return len(changes)


def tell_error(ctx: TenantContext, device: Device) -> None:
    """A device went to error: its site's assigned members and the tenant's owners and admins
    hear of it (not the one who set it), all in one statement however many they are."""
    concerned = select(Membership.user_id).where(
        Membership.tenant_id == ctx.tenant_id, Membership.user_id != ctx.user_id,
        Membership.status == MembershipStatus.ACTIVE,
        or_(holds_condition(Permission.SITES_SEE_ALL),  # who sees every site (owners, admins, ...)
            Membership.user_id.in_(select(SiteAssignment.user_id).where(
                SiteAssignment.tenant_id == ctx.tenant_id, SiteAssignment.site_id == device.site_id))))
    site = db.session.scalar(select(Site.name).where(Site.tenant_id == ctx.tenant_id, Site.id == device.site_id))
    notify(ctx.tenant_id, concerned, Kind.DEVICE_ERROR,
           {"device": device.name, "site": site or "no site", "tenant": ctx.tenant.name},
           f"/t/{ctx.tenant.slug}/devices/{device.id}")


def move_devices(ctx: TenantContext, devices: list[Device], site_id: UUID | None) -> int:
    site = target_site(ctx, site_id)
    moved = 0
    for device in devices:
        if device.site_id == site.id:
            continue
        before = snapshot(device)
        device.site_id = site.id
        audit.record(ctx.tenant_id, ctx.user_id, "device.move", "device", device.id, before=before,
                     after=snapshot(device) | {"site": site.name})
        moved += 1
    return moved


def decommission_device(ctx: TenantContext, device: Device) -> None:
    if device.status == DeviceStatus.DECOMMISSIONED:
        raise RuleViolation(f"{device.name} is already decommissioned.")
    before = snapshot(device)
    device.status = DeviceStatus.DECOMMISSIONED
    audit.record(ctx.tenant_id, ctx.user_id, "device.decommission", "device", device.id, before=before,
                 after=snapshot(device))
    device_status_changed(ctx, [(device, before["status"])])
