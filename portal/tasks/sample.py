"""Sample tasks (flask seed): a dozen across Acme and TechStart, through the real services (so
each has its audit rows), dated from the day the sample is loaded: some overdue, some due soon,
some done, several with comments."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from ..accounts.models import User
from ..database.context import tenant_scope
from ..devices.models import Device
from ..extensions import db
from ..sites.models import Site
from ..tenancy import context_for
from ..tenancy.models import Membership
from ..tenants.models import Tenant
from . import services
from .models import Task, TaskPriority, TaskStatus

# (title, priority, due in days (None: no date), site, device, creator, assignee, status, description, comments)
ACME = [
    ("Replace the HQ lobby camera", "high", 3, "Acme Headquarters", "HQ Lobby Camera", "alice@acme.com",
     "bob@acme.com", "open", "The image is blurry at night. Vendor notes: https://example.com/cameras/4k-night",
     [("bob@acme.com", "Ordered the replacement, arriving Thursday."), ("alice@acme.com", "Thanks Bob!")]),
    ("Server room sensor reports errors", "urgent", -2, "Acme Headquarters", "HQ Server Room Sensor",
     "consultant@external.com", "bob@acme.com", "in_progress", "Readings stopped after the firmware update.",
     [("bob@acme.com", "Rolled back to 0.9.6, watching it."), ("consultant@external.com", "Keep me posted.")]),
    ("Service the HVAC controller", "medium", -5, "Acme Headquarters", "HQ HVAC Controller", "alice@acme.com",
     "bob@acme.com", "open", "Quarterly service is overdue.", []),
    ("Check the dock camera mount", "medium", 1, "Acme Warehouse", "Warehouse Dock Camera", "alice@acme.com",
     "consultant@external.com", "blocked", "Waiting for a lift to reach the mount.",
     [("consultant@external.com", "Lift booked for next week.")]),
    ("Read the energy meter for the audit", "low", 10, "Acme Warehouse", "Warehouse Energy Meter",
     "consultant@external.com", None, "open", "", []),
    ("Renew the badge reader contract", "high", -1, None, None, "alice@acme.com", "consultant@external.com", "open",
     "Contract ends this month.", []),
    ("Label the network closet", "low", None, "Acme Headquarters", None, "bob@acme.com", "bob@acme.com", "done",
     "", [("bob@acme.com", "Done, labels printed.")]),
]
TECHSTART = [
    ("Update the office router firmware", "high", -3, "TechStart Office", "Office Router", "charlie@techstart.io",
     "dave@techstart.io", "open", "Security advisory: https://example.com/advisories/rtr-7.3", []),
    ("Replace the meeting room sensor battery", "medium", 2, "TechStart Office", "Meeting Room Sensor",
     "charlie@techstart.io", "dave@techstart.io", "in_progress", "",
     [("dave@techstart.io", "Battery on order.")]),
    ("Back up the build server", "urgent", 0, "TechStart Office", "Build Server", "dave@techstart.io",
     "dave@techstart.io", "open", "Before the OS upgrade.", []),
    ("Write the office IT handbook", "low", 20, None, None, "charlie@techstart.io", "consultant@external.com",
     "open", "", [("consultant@external.com", "Draft outline shared.")]),
    ("Move the printer to the second floor", "medium", -10, "TechStart Office", None, "charlie@techstart.io",
     None, "cancelled", "", []),
]


def load() -> None:
    users = {u.email: u for u in db.session.scalars(select(User))}
    for slug, specs in (("acme-corp", ACME), ("techstart", TECHSTART)):
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            continue
        with tenant_scope(db.session, tenant.id, actor="sample:tasks"):
            db.session.flush()
            if db.session.scalar(select(Task.id).where(Task.tenant_id == tenant.id).limit(1)):
                continue
            _load(tenant, specs, users)
            db.session.flush()


def _load(tenant: Tenant, specs, users) -> None:
    sites = dict(db.session.execute(select(Site.name, Site.id).where(Site.tenant_id == tenant.id)).all())
    devices = dict(db.session.execute(select(Device.name, Device.id).where(Device.tenant_id == tenant.id)).all())
    members = {m.user_id: m for m in db.session.scalars(select(Membership).where(Membership.tenant_id == tenant.id))}

    def as_(email):
        return context_for(tenant, members[users[email].id])

    today = date.today()
    for title, priority, due, site, device, creator, assignee, status, description, comments in specs:
        ctx = as_(creator)
        task = services.create_task(ctx, services.TaskData(
            title, description, TaskPriority(priority), today + timedelta(days=due) if due is not None else None,
            sites.get(site), devices.get(device), users[assignee].id if assignee else None))
        for author, body in comments:
            services.add_comment(as_(author), task, body)
        if status != "open":
            services.change_status(as_(assignee or creator), [task], TaskStatus(status))
    if tenant.slug == "acme-corp":  # an edit and a hand-over, so the audit log shows every kind of task row
        ctx = as_("alice@acme.com")
        energy = db.session.scalar(select(Task).where(Task.tenant_id == tenant.id,
                                                      Task.title == "Read the energy meter for the audit"))
        services.update_task(ctx, energy, services.TaskData(
            energy.title, "For the yearly energy audit.", TaskPriority(energy.priority), energy.due_on,
            energy.site_id, energy.device_id, energy.assignee_id))
        services.assign(ctx, [energy], users["consultant@external.com"].id)
