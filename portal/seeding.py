"""Load seeds/sample.toml through the models, tenant by tenant under RLS."""
from __future__ import annotations

import hashlib
import secrets
import tomllib
from datetime import timedelta

from sqlalchemy import func, select

from . import audit, keys
from .accounts.models import UserType
from .accounts.services import create_user
from .config import ROOT
from .database.context import tenant_scope
from .devices.models import Device, DeviceStatus, DeviceType
from .extensions import db
from .invitations.models import Invitation
from .notifications import Kind, notify
from .sites.models import Site, SiteAssignment
from .tenancy import roles
from .tenancy.models import Membership, MembershipRole, TenantRole, TenantRolePermission, UserRole
from .tenancy.permissions import Permission
from .tenants.models import Plan, Tenant, TenantStatus, TenantType
from .tenants.plans import PLAN_OF_TYPE, apply_plan

SAMPLE = ROOT / "seeds" / "sample.toml"


def load_sample(password: str) -> bool:
    """Create the sample data once; False when it is already there."""
    data = tomllib.loads(SAMPLE.read_text())
    if db.session.scalar(select(Tenant.id).where(Tenant.slug == data["tenants"][0]["slug"])):
        return False
    users = {u["email"]: create_user(u["email"], u["name"], password,
                                     user_type=UserType(u.get("user_type", "regular")),
                                     email_verified_at=func.now())
             for u in data["users"]}
    admin = users["admin@system.local"]
    for spec in data["tenants"]:
        tenant = Tenant(name=spec["name"], slug=spec["slug"], type=TenantType(spec["type"]),
                        status=TenantStatus(spec.get("status", "active")), settings=spec.get("settings", {}),
                        status_reason=spec.get("status_reason"))
        apply_plan(tenant, db.session.get(Plan, spec.get("plan") or PLAN_OF_TYPE[tenant.type]))
        tenant.max_users = spec.get("max_users", tenant.max_users)
        if tenant.status == TenantStatus.PENDING_DELETION:  # asked by its first owner, purged in 20 days
            tenant.deletion_requested_at, tenant.purge_after = func.now(), func.now() + timedelta(days=20)
            tenant.deletion_requested_by = users[spec["members"][0]["email"]].id
        db.session.add(tenant)
        db.session.flush()  # tenant.id scopes everything below
        with tenant_scope(db.session, tenant.id, actor="sample:tenants"):
            keys.create_tenant_key(tenant.id)
            _load_tenant(tenant, spec, data, users, admin)
    from .auditlog import sample
    sample.load(users)  # a history showing every kind of audit row and security event
    _analytics_sample(data["tenants"][0]["slug"])
    from .tasks import sample as tasks
    tasks.load()  # a dozen tasks at Acme and TechStart, some overdue, with comments
    from .sso import sample as sso
    sso.load()  # acme.com verified, a disabled connection to the demo provider (SSO_DEMO_PROVIDER=1)
    _integrations_sample(data)  # last: nothing above is delivered to them
    return True


def _integrations_sample(data: dict) -> None:
    """One integration of each kind per tenant, pointing at `flask integrations sample-receivers`."""
    from .integrations.models import Integration, IntegrationStatus
    from .integrations.services import seal_credentials
    spec = data["integrations"]
    receiver = spec["receiver"]
    kinds = [("webhook", "Sample webhook receiver", {"url": f"{receiver}/webhook", "events": spec["events"]},
              {"signing_secret": spec["signing_secret"]}),
             ("json_source", "Sample POS export", {
                 "url": f"{receiver}/pos/sales", "event_type": "pos.sale", "records_key": "data", "next_key": "next",
                 "cursor_key": "cursor", "cursor_param": "cursor", "id_key": "id", "time_key": "occurred_at",
                 "auth_header": "Authorization", "interval_minutes": 60}, {"token": spec["token"]}),
             ("inbound", "Sample door sensors", {}, {"signing_secret": spec["signing_secret"]})]
    for tenant in db.session.scalars(select(Tenant).where(Tenant.slug.in_([t["slug"] for t in data["tenants"]]))):
        tenant.max_integrations = max(tenant.max_integrations, len(kinds))
        tenant.features = sorted(set(tenant.features or []) | {"webhooks", "json_source", "inbound_events"})
        with tenant_scope(db.session, tenant.id, actor="sample:integrations"):
            for provider, name, config, credentials in kinds:
                row = Integration(tenant_id=tenant.id, name=name, provider=provider, config=config, enabled=True,
                                  status=IntegrationStatus.PENDING,
                                  description="Sample data: start `flask integrations sample-receivers`.",
                                  next_sync_at=func.now() + timedelta(hours=1) if provider == "json_source" else None)
                db.session.add(row)
                db.session.flush()  # the row id is the credentials' associated data
                seal_credentials(row, credentials)
            db.session.flush()  # inside the scope: RLS checks the rows as they are written


def _analytics_sample(slug: str) -> None:
    """A month of analytics events for the first sample tenant (acme-corp)."""
    from .analytics import sample
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
    with tenant_scope(db.session, tenant.id, actor="sample:analytics"):
        devices = [(d.id, d.site_id, DeviceStatus(d.status).value) for d in db.session.scalars(
            select(Device).where(Device.tenant_id == tenant.id))]
        members = list(db.session.scalars(select(Membership.user_id).where(Membership.tenant_id == tenant.id)))
        sample.load(tenant.id, devices, members)
        db.session.flush()


def _apps(tenant, spec, users, owner) -> None:
    """Connected apps (api.grants), registered by the owner, and the grants members gave them."""
    from .api import grants
    from .tenancy import TenantContext
    everything = roles.Role("sample", "Sample data", "", frozenset(Permission))
    for a in spec.get("apps", []):
        ctx = TenantContext(tenant, None, everything)
        app, _ = grants.create_app(ctx, grants.AppData(a["name"], a["redirect_uris"], a.get("public", True), a["scopes"]))
        if owner is not None:
            app.created_by = owner.id
        for given in a.get("grants", []):
            member = db.session.scalar(select(Membership).where(Membership.tenant_id == tenant.id,
                                                                Membership.user_id == users[given["email"]].id))
            grant = grants.consent(TenantContext(tenant, member, roles.role_of(member)), app.id, app.name,
                                   given["scopes"])
            grant.last_used_at = func.now() - timedelta(hours=3)


def _load_tenant(tenant, spec, data, users, admin) -> None:
    owner = None
    sites = {}
    for s in spec.get("sites", []):
        site = Site(tenant_id=tenant.id, name=s["name"], address=s["address"], latitude=s["latitude"],
                    longitude=s["longitude"], timezone=s["timezone"], meta=s.get("metadata", {}))
        db.session.add(site)
        sites[s["name"]] = site
    custom = {}
    for r in spec.get("roles", []):
        row = TenantRole(tenant_id=tenant.id, name=r["name"], description=r.get("description", ""))
        db.session.add(row)
        db.session.flush()  # the id keys its permissions
        row.grants = [TenantRolePermission(tenant_id=tenant.id, role_id=row.id, permission=Permission(p).value)
                      for p in r["permissions"]]
        custom[r["name"]] = roles.custom_role(row)

    def role(name: str) -> roles.Role:
        return custom[name] if name in custom else roles.system_role(MembershipRole(name))

    for m in spec.get("members", []):
        user = users[m["email"]]
        base, *further = m.get("roles") or [m["role"]]  # the base role first, then further custom roles
        owner = owner or (user if role(base).is_owner else None)
        membership = Membership(tenant_id=tenant.id, user_id=user.id, invited_at=func.now(),
                                accepted_at=func.now(), **role(base).columns())
        db.session.add(membership)
        if further:
            db.session.flush()  # the membership's id keys its further roles
            db.session.add_all(UserRole(tenant_id=tenant.id, membership_id=membership.id, role_id=role(r).custom_id)
                               for r in further)
    db.session.flush()  # memberships and sites must exist before assignments reference them
    for m in spec.get("members", []):
        for site_name in m.get("sites", []):
            db.session.add(SiteAssignment(tenant_id=tenant.id, site_id=sites[site_name].id,
                                          user_id=users[m["email"]].id, assigned_by=owner.id if owner else None))
            if owner is not None:  # something in the bell (site assignments are in the portal only by default)
                db.session.flush()  # the site's id names the link
                notify(tenant.id, [users[m["email"]].id], Kind.SITE_ASSIGNED,
                       {"actor": owner.display_name, "site": site_name, "tenant": tenant.name},
                       f"/t/{tenant.slug}/sites/{sites[site_name].id}")
    for group in data["devices"]:
        if group["tenant"] != spec["slug"]:
            continue
        for i, d in enumerate(group["items"]):
            db.session.add(Device(tenant_id=tenant.id, site_id=sites[group["site"]].id, name=d["name"],
                                  type=DeviceType(d["type"]), serial_number=d["serial"],
                                  status=DeviceStatus(d["status"]), firmware_version=d.get("firmware"),
                                  last_seen_at=func.now() - timedelta(minutes=7 * i)
                                  if d["status"] != "decommissioned" else None,
                                  meta=d.get("metadata", {})))
    for inv in spec.get("invitations", []):
        # The token is thrown away: sample invitations can be listed, not accepted.
        db.session.add(Invitation(tenant_id=tenant.id, email=inv["email"], **role(inv["role"]).columns(),
                                  token_hash=hashlib.sha256(secrets.token_bytes(32)).digest(),
                                  invited_by=users[inv["invited_by"]].id,
                                  expires_at=func.now() + timedelta(days=7)))
    audit.record(tenant.id, admin.id, "tenant.create", "tenant", tenant.id, after={"slug": tenant.slug})
    _apps(tenant, spec, users, owner)
    if owner is not None:
        audit.record(tenant.id, owner.id, "site.create", "site", None, after={"sites": list(sites)})
        for made in custom.values():
            audit.record(tenant.id, owner.id, "role.create", "role", made.custom_id,
                         after={"name": made.name, "description": made.description,
                                "permissions": sorted(p.value for p in made.permissions)})
    db.session.flush()
