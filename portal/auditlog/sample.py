"""The sample data's history: enough audit rows and security events for the viewer to show
every kind. Changes go through the real services and end where the sample data started (a
device moved and moved back, a site archived and restored, ...), so the sample state the
rest of the portal shows is unchanged; the sample's own creations are recorded as they were
made (devices created or imported from seeds/sample.toml)."""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from .. import audit
from ..accounts.models import User
from ..database.context import tenant_scope
from ..devices import services as devices
from ..devices.models import Device, DeviceStatus
from ..extensions import db
from ..invitations.models import Invitation
from ..members import services as members
from ..security.events import event_row
from ..security.models import SecurityEvent
from ..sites import services as sites
from ..sites.models import Site
from ..tenancy import context_for, roles
from ..tenancy.models import Membership, MembershipRole, MembershipStatus
from ..tenants.models import Tenant
from ..agents import credentials as agent_credentials
from ..agents import services as agent_services
from ..agents.credentials import AgentPrincipal
from ..agents.models import Command, TaskStatus
from ..audit import retention

SLUG = "acme-corp"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def load(users: dict[str, User]) -> None:
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == SLUG))
    if tenant is None:
        return
    alice, carol = users["alice@acme.com"], users["carol@acme.com"]
    with tenant_scope(db.session, tenant.id, actor="sample:audit"):
        db.session.flush()  # the sample rows, before the services read them
        _devices(tenant, alice)
        _agents(tenant, alice)
        _sites(tenant, alice, carol)
        _members(tenant, users)
        _invitations(tenant, users)
        retention.set_retention(tenant, alice.id, 400)
        audit.record(tenant.id, alice.id, "audit.export", "audit", None, format="csv", filter={"type": "device"})
        db.session.flush()
    _security_events(users)


def _as(tenant: Tenant, user: User):
    """The sample's actor, as a request of theirs would see them (their membership and role)."""
    membership = db.session.scalar(select(Membership).where(Membership.tenant_id == tenant.id,
                                                            Membership.user_id == user.id))
    return context_for(tenant, membership)


def _devices(tenant: Tenant, alice: User) -> None:
    rows = {d.name: d for d in db.session.scalars(select(Device).where(Device.tenant_id == tenant.id))}
    site_names = dict(db.session.execute(select(Site.id, Site.name).where(Site.tenant_id == tenant.id)).all())
    created = [(d.id, None, devices.snapshot(d)) for d in rows.values() if site_names[d.site_id].endswith("Headquarters")]
    imported = [(d.id, None, devices.snapshot(d)) for d in rows.values() if d.id not in {c[0] for c in created}]
    audit.record_many(tenant.id, alice.id, "device.create", "device", created, source="sample data")
    audit.record_many(tenant.id, alice.id, "device.import", "device", imported, source="sample.toml")
    ctx = _as(tenant, alice)
    camera, sensor = rows["HQ Lobby Camera"], rows["HQ Server Room Sensor"]
    hq, warehouse = camera.site_id, next(s for s, n in site_names.items() if n.endswith("Warehouse"))
    devices.move_devices(ctx, [camera], warehouse)
    devices.move_devices(ctx, [camera], hq)
    original = sensor.status
    devices.change_status(ctx, [sensor], DeviceStatus.MAINTENANCE)
    devices.change_status(ctx, [sensor], original)
    data = devices.DeviceData(name=camera.name, type=camera.type, serial_number=camera.serial_number,
                              site_id=camera.site_id, status=camera.status, firmware_version=camera.firmware_version,
                              last_seen_at=camera.last_seen_at, specs=(camera.meta or {}).get("specs"),
                              configuration=(camera.meta or {}).get("configuration"))
    devices.update_device(ctx, camera, replace(data, firmware_version="2.9.0-rc1"))
    devices.update_device(ctx, camera, data)
    beacon = rows["Warehouse Asset Beacon"]  # decommissioned in the sample: its row says so
    audit.record(tenant.id, alice.id, "device.decommission", "device", beacon.id,
                 before=devices.snapshot(beacon) | {"status": "offline"}, after=devices.snapshot(beacon))
    db.session.flush()


def _agents(tenant: Tenant, alice: User) -> None:
    """A gateway's agent credential (issued, rotated), a revoked one, and tasks in each ending."""
    ctx = _as(tenant, alice)
    rows = {d.name: d for d in db.session.scalars(select(Device).where(Device.tenant_id == tenant.id))}
    camera, sensor = rows["HQ Lobby Camera"], rows["HQ Server Room Sensor"]
    agent_credentials.issue(ctx, camera, gateway=True)
    agent_credentials.issue(ctx, camera, gateway=True)
    agent_credentials.issue(ctx, sensor, gateway=False)
    agent_credentials.revoke(ctx, sensor)
    hour = timedelta(hours=1)
    done, failed, cancelled, late = (agent_services.queue_task(ctx, [camera], command, parameters, hour)[0]
                                     for command, parameters in ((Command.COLLECT_DIAGNOSTICS, {}),
                                                                 (Command.UPDATE_FIRMWARE, {"version": "3.0.0"}),
                                                                 (Command.REBOOT, {}), (Command.REBOOT, {})))
    agent_services.cancel_task(ctx, cancelled)
    db.session.flush()
    late.created_at, late.expires_at = late.created_at - 2 * hour, late.created_at - hour
    db.session.flush()  # the expiry statement reads it
    agent_services.expire_overdue(tenant.id)
    credential = agent_credentials.live_credential(ctx, camera)
    agent = AgentPrincipal(tenant.id, camera.id, credential.id, True, camera.name, DeviceStatus(camera.status))
    reports = {done.id: agent_services.Report(TaskStatus.SUCCEEDED, 0, {"platform": "Linux-6.1-armv7l"},
                                              "collected platform information\n"),
               failed.id: agent_services.Report(TaskStatus.FAILED, 2, {"simulated": True},
                                                "not enough space for the image\n")}
    for _ in reports:
        claimed = agent_services.claim_task(agent)
        agent_services.report_result(agent, claimed.id, reports[claimed.id])


def _sites(tenant: Tenant, alice: User, carol: User) -> None:
    ctx = _as(tenant, alice)
    booth = sites.create_site(ctx, sites.SiteData(name="Trade Fair Booth", timezone="America/Chicago",
                                                            address="Hall B, McCormick Place, Chicago"))
    sites.update_site(ctx, booth, sites.SiteData(name="Trade Fair Booth", timezone="America/Chicago",
                                                           address="Hall C, McCormick Place, Chicago"))
    sites.archive_site(ctx, booth)
    sites.restore_site(ctx, booth)
    sites.assign_user_to_site(ctx, booth, carol.id)
    sites.unassign_user_from_site(ctx, booth, carol.id)
    sites.delete_site(ctx, booth)
    db.session.flush()


def _members(tenant: Tenant, users: dict[str, User]) -> None:
    def membership(email):
        return db.session.scalar(select(Membership).where(Membership.tenant_id == tenant.id,
                                                          Membership.user_id == users[email].id))
    alice, carol, consultant = (membership(e) for e in ("alice@acme.com", "carol@acme.com",
                                                        "consultant@external.com"))
    ctx = context_for(tenant, alice)
    members.change_role(ctx, carol, roles.system_role(MembershipRole.MEMBER))
    members.change_role(ctx, carol, roles.system_role(MembershipRole.VIEWER))
    members.set_status(ctx, carol, MembershipStatus.SUSPENDED)
    members.set_status(ctx, carol, MembershipStatus.ACTIVE)
    members.transfer_ownership(ctx, consultant)  # and back: Alice owns Acme again
    members.transfer_ownership(context_for(tenant, consultant), alice)
    db.session.flush()


def _invitations(tenant: Tenant, users: dict[str, User]) -> None:
    """How the sample's members came in, and its pending invitation's sends; plus a declined
    and a cancelled invitation and a former member, which leave no rows behind but their history."""
    alice = users["alice@acme.com"]
    for email, role in (("bob@acme.com", "member"), ("carol@acme.com", "viewer"),
                        ("consultant@external.com", "admin")):
        invitation_id = uuid.uuid4()
        audit.record(tenant.id, alice.id, "invitation.create", "invitation", invitation_id,
                     after={"email": email, "role": role, "sites": []})
        audit.record(tenant.id, users[email].id, "invitation.accept", "invitation", invitation_id,
                     after={"email": email, "role": role, "sites": []})
    for inv in db.session.scalars(select(Invitation).where(Invitation.tenant_id == tenant.id)):
        audit.record(tenant.id, inv.invited_by, "invitation.create", "invitation", inv.id,
                     after={"email": inv.email, **roles.role_of(inv).snapshot(), "sites": []})
        audit.record(tenant.id, inv.invited_by, "invitation.resend", "invitation", inv.id,
                     after={"email": inv.email, "send_count": 2})
    for email, action in (("henry@acme.com", "invitation.decline"), ("ivy@acme.com", "invitation.cancel")):
        invitation_id = uuid.uuid4()
        audit.record(tenant.id, alice.id, "invitation.create", "invitation", invitation_id,
                     after={"email": email, "role": "viewer", "sites": []})
        if action == "invitation.decline":
            audit.record(tenant.id, None, action, "invitation", invitation_id, after={"email": email})
        else:
            audit.record(tenant.id, alice.id, action, "invitation", invitation_id,
                         before={"status": "pending"}, after={"status": "cancelled", "email": email})
    audit.record(tenant.id, alice.id, "member.remove", "membership", uuid.uuid4(),
                 before={"role": "member", "status": "suspended", "email": "dan@acme.com"})


def _security_events(users: dict[str, User]) -> None:
    """A few account events with documentation addresses (RFC 5737)."""
    alice, bob, admin = users["alice@acme.com"], users["bob@acme.com"], users["admin@system.local"]
    rows = [
        event_row("signin.failure", alice.id, alice.email, {"method": "password", "reason": "bad_password"}),
        event_row("signin.success", alice.id, alice.email, {"method": "password"}),
        event_row("mfa.enable", alice.id, alice.email, {}),
        event_row("mfa.backup_code_used", alice.id, alice.email, {"remaining": 9}),
        event_row("session.revoke", alice.id, alice.email, {"session_id": str(uuid.uuid4())}),
        event_row("password.reset_requested", bob.id, bob.email, {}),
        event_row("password.reset", bob.id, bob.email, {"sessions_ended": 2}),
        event_row("signin.failure", None, "mallory@example.com", {"method": "password", "reason": "bad_password"}),
        event_row("signin.success", admin.id, admin.email, {"method": "password"}),
    ]
    for i, row in enumerate(rows):
        row.update(ip_address=f"203.0.113.{10 + i}", user_agent=BROWSER, request_id=f"sample{i:04d}")
        db.session.add(SecurityEvent(**row))
