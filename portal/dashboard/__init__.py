"""The tenant dashboard: /t/<slug>/. Counts, charts of the fleet (SVG drawn here, each bar a
link to the filtered device list), what needs attention and the latest changes, all limited
to what the viewer may see."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import Flask, render_template, url_for
from sqlalchemy import String, cast, func, or_, select

from ..accounts.models import User
from ..analytics import charts as analytics_charts
from ..analytics import queries as analytics_queries
from ..audit.models import AuditLog
from ..devices.history import actor_names, describe
from ..devices.models import Device, DeviceStatus
from ..devices.queries import count_by_status
from ..extensions import db
from ..sites.models import Site
from ..sites.visibility import may_see
from ..tenancy import Permission, can, current, requires, tenant_blueprint
from ..tenancy.models import Membership, MembershipStatus
from ..tenancy.roles import owner_condition
from ..tenants.plans import get_plan

bp = tenant_blueprint("dashboard", __name__)

OFFLINE_FOR = timedelta(hours=24)
ATTENTION_LIMIT = 8
CHANGES_LIMIT = 8
SITES_CHARTED = 12


@bp.get("/")
@requires(Permission.TENANT_VIEW)
def index():
    # RLS already limits every query to the tenant; the filters say it for the reader too.
    # Sites and devices count only what this member may see (their assigned sites, unless
    # their role sees every site).
    ctx = current()
    tid = ctx.tenant_id
    sites = db.session.scalar(select(func.count()).select_from(Site).where(
        Site.tenant_id == tid, Site.archived_at.is_(None), may_see(ctx, Site.id)))
    members = db.session.scalar(select(func.count()).select_from(Membership).where(
        Membership.tenant_id == tid, Membership.status == MembershipStatus.ACTIVE))
    by_status = count_by_status(ctx)
    devices = [(status, by_status.get(status, 0)) for status in DeviceStatus]
    per_site = db.session.execute(
        select(Site.id, Site.name, func.count(Device.id).label("n"))
        .join(Device, (Device.tenant_id == Site.tenant_id) & (Device.site_id == Site.id), isouter=True)
        .where(Site.tenant_id == tid, Site.archived_at.is_(None), may_see(ctx, Site.id))
        .group_by(Site.id, Site.name).order_by(func.count(Device.id).desc(), Site.name).limit(SITES_CHARTED)).all()
    stale = datetime.now(timezone.utc) - OFFLINE_FOR
    attention = db.session.execute(
        select(Device.id, Device.name, Device.status, Device.last_seen_at, Site.name.label("site_name"))
        .join(Site, (Site.tenant_id == Device.tenant_id) & (Site.id == Device.site_id))
        .where(Device.tenant_id == tid, may_see(ctx, Device.site_id),
               or_(Device.status == DeviceStatus.ERROR,
                   (Device.status == DeviceStatus.OFFLINE) & (Device.last_seen_key < stale)))
        .order_by(Device.status.desc(), Device.last_seen_key).limit(ATTENTION_LIMIT)).all()
    changes = _latest_changes(ctx) if can(Permission.AUDIT_VIEW) else []
    owners = [] if ctx.sees_all or sites else db.session.scalars(
        select(User.name).join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tid, owner_condition()).order_by(User.name).limit(3)).all()
    activity = _activity(ctx, by_status.get(DeviceStatus.ONLINE, 0)) if can(Permission.ANALYTICS_VIEW) else None
    plan = get_plan(ctx.tenant.plan)  # the plan's name, never the tenant's type (issue 22)
    return render_template("dashboard/index.html", plan=plan.name if plan else ctx.tenant.plan, activity=activity, sites=sites, members=members, devices=devices,
                           device_total=sum(by_status.values()), per_site=per_site, attention=attention,
                           changes=changes, owners=owners, offline_hours=int(OFFLINE_FOR.total_seconds() // 3600))


ACTIVITY_DAYS = 30


def _activity(ctx, online_now: int) -> dict:
    """The analytics charts (analytics:view): events per day by type, and for those who see every
    site the devices online per day, rebuilt from the status changes; every column a link to the
    analytics page for that day."""
    last = datetime.now(timezone.utc).date()
    first = last - timedelta(days=ACTIVITY_DAYS - 1)

    def link(default):
        def href(day, values):
            # The analytics page on that day, for the given type or the day's busiest one.
            busiest = max((k for k in values if k != "other"), key=values.get, default=None)
            return url_for("analytics.index", type=default or busiest, range="custom", start=day.isoformat(),
                           end=day.isoformat())
        return href

    series, per_type = analytics_queries.per_day_by_type(ctx.tenant_id, first, last)
    activity = {"events": analytics_charts.columns("Events per day by type, last 30 days", per_type, series,
                                                   href=link(None))}
    if ctx.sees_all:  # the count online now is the whole fleet's only for those who see every site
        online = analytics_queries.online_per_day(ctx.tenant_id, online_now, last, ACTIVITY_DAYS)
        activity["online"] = analytics_charts.columns(
            "Devices online at the end of each day, last 30 days", [(d, {"online": n}) for d, n in online],
            ["online"], unit="device", href=link("device.status"), classes={"online": "fill-online"})
    return activity


def _latest_changes(ctx):
    """The latest device changes, of devices the viewer may see, in words."""
    rows = db.session.execute(
        select(AuditLog, Device.id.label("device_id"), Device.name.label("device_name"))
        .join(Device, (Device.tenant_id == AuditLog.tenant_id) & (cast(Device.id, String) == AuditLog.resource_id))
        .where(AuditLog.tenant_id == ctx.tenant_id, AuditLog.resource_type == "device",
               may_see(ctx, Device.site_id))
        .order_by(AuditLog.created_at.desc()).limit(CHANGES_LIMIT)).all()
    names = actor_names([r.AuditLog for r in rows])
    return [{"entry": r.AuditLog, "device_id": r.device_id, "device_name": r.device_name,
             "text": describe(r.AuditLog, names.get(r.AuditLog.user_id))} for r in rows]


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
