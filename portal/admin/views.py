"""/admin/tenants: every tenant (search, filters, keyset pages), creating one, and each
tenant's page with its usage, members, status history and actions. /admin/users: find an
account, see its status, memberships and security state, suspend it with a reason or reactivate it,
send a reset link."""
from __future__ import annotations

from uuid import UUID

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..accounts.models import User
from ..audit.models import AuditLog
from ..database import replica
from ..database.context import tenant_scope
from ..extensions import db, htmx
from ..rules import RuleViolation
from ..security.events import KINDS, describe
from ..security.services import request_password_reset
from ..security.sessions import activity
from ..tenancy.models import Membership
from ..tenants.models import LIMITS, Tenant, TenantStatus, TenantTombstone
from ..tenants.plans import FEATURES, get_plan, plans
from ..words import possessive
from . import services
from .security_events import SEVERITIES, Filter
from .security_events import page as security_page
from .forms import FeaturesForm, NewTenantForm, PlanForm, StatusForm, UserStatusForm

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _system_admins_only():
    if not (current_user.is_authenticated and current_user.is_system_admin):
        abort(404)


@bp.get("/tenants")
@replica.on_replica
def tenants():
    args = request.args
    state = {"q": args.get("q", "").strip()[:100], "status": args.get("status", ""), "plan": args.get("plan", ""),
             "sort": "created" if args.get("sort") == "created" else "name"}
    rows, next_after = services.search(**state, after=args.get("after", ""))
    context = {"tenants": rows, "members": services.member_counts(rows), "next_after": next_after, "state": state, "statuses": list(TenantStatus),
               "plans": plans(), "link_state": {k: v for k, v in state.items() if v and (k, v) != ("sort", "name")}}
    if htmx and htmx.target == "tenant-table":
        return render_template("admin/_tenant_table.html", **context)
    tombstones = db.session.scalars(select(TenantTombstone).order_by(TenantTombstone.purged_at.desc()).limit(20))
    return render_template("admin/tenants.html", tombstones=list(tombstones), **context)


@bp.route("/tenants/new", methods=["GET", "POST"])
def new_tenant():
    form = NewTenantForm(plans=plans())
    if form.validate_on_submit():
        try:
            tenant = services.create_tenant(current_user, services.NewTenant(
                form.name.data, form.slug.data, form.plan.data, form.owner_email.data))
        except RuleViolation as exc:
            db.session.rollback()
            getattr(form, exc.field or "name").errors.append(exc.message)
        else:
            flash(f"Created {tenant.name}; {form.owner_email.data} is invited as its owner.", "success")
            return redirect(url_for(".tenant", slug=tenant.slug), 303)
    return render_template("admin/new_tenant.html", form=form), 422 if request.method == "POST" else 200


def _tenant_or_404(slug: str) -> Tenant:
    return db.session.scalar(select(Tenant).where(Tenant.slug == slug)) or abort(404)


def _tenant_page(tenant: Tenant, *, status_form=None, plan_form=None, code: int = 200):
    """The console reads one tenant's rows through an explicit tenant scope (the reviewed path)."""
    with tenant_scope(db.session, tenant.id, actor=None):
        members = db.session.scalars(select(Membership).where(Membership.tenant_id == tenant.id)
                                     .order_by(Membership.created_at).limit(100)).all()
        history = db.session.scalars(select(AuditLog).where(
            AuditLog.tenant_id == tenant.id, AuditLog.resource_type == "tenant")
            .order_by(AuditLog.created_at.desc()).limit(20)).all()
        usage = services.usage(tenant)
        if plan_form is None:
            plan_form = PlanForm(formdata=None, plans=plans(), plan=tenant.plan,
                                 **{limit: getattr(tenant, limit) for limit in LIMITS})
        # Rendered in the scope too: the members' custom roles are that tenant's rows.
        return render_template("admin/tenant.html", tenant=tenant, members=members, history=history,
                               usage=usage, plan=get_plan(tenant.plan), limits=LIMITS,
                               status_form=status_form or StatusForm(), plan_form=plan_form,
                               status_actions=services.status_actions(tenant), features=FEATURES,
                               features_form=FeaturesForm(formdata=None)), code


@bp.get("/tenants/<slug>")
def tenant(slug: str):
    return _tenant_page(_tenant_or_404(slug))


@bp.post("/tenants/<slug>/status")
def tenant_status(slug: str):
    tenant = _tenant_or_404(slug)
    form = StatusForm()
    if form.validate():
        try:
            services.change_status(current_user, tenant, form.action.data, form.reason.data)
        except RuleViolation as exc:
            db.session.rollback()
            form.reason.errors.append(exc.message)
        else:
            flash(f"{tenant.name} is now {tenant.status.value.replace('_', ' ')}.", "success")
            return redirect(url_for(".tenant", slug=slug), 303)
    return _tenant_page(_tenant_or_404(slug), status_form=form, code=422)


@bp.post("/tenants/<slug>/plan")
def tenant_plan(slug: str):
    tenant = _tenant_or_404(slug)
    form = PlanForm(plans=plans())
    plan = get_plan(form.plan.data)
    if form.validate() and plan is not None:
        try:
            limits = {limit: getattr(plan, limit) for limit in LIMITS} if form.use_plan.data else form.limits()
            services.change_limits(current_user, tenant, plan, limits)
        except RuleViolation as exc:
            db.session.rollback()
            getattr(form, exc.field or "plan").errors.append(exc.message)
        else:
            flash(f"Saved {possessive(tenant.name)} plan and limits.", "success")
            return redirect(url_for(".tenant", slug=slug), 303)
    elif plan is None:
        form.plan.errors.append("Choose one of the plans.")
    return _tenant_page(_tenant_or_404(slug), plan_form=form, code=422)


@bp.post("/tenants/<slug>/features")
def tenant_features(slug: str):
    tenant = _tenant_or_404(slug)
    form = FeaturesForm()
    if not form.validate():
        abort(400, "Your form expired. Please try again.")
    try:
        services.change_features(current_user, tenant, form.features.data or [])
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash(f"Saved {possessive(tenant.name)} features.", "success")
    return redirect(url_for(".tenant", slug=slug), 303)


@bp.get("/users")
@replica.on_replica
def users():
    q = request.args.get("q", "").strip()[:100]
    rows, next_after = services.find_users(q, request.args.get("after", "")[:320])
    template = "admin/_user_table.html" if htmx and htmx.target == "user-table" else "admin/users.html"
    return render_template(template, users=rows, next_after=next_after, q=q)


def _user_or_404(user_id: UUID) -> User:
    return db.session.get(User, user_id) or abort(404)


def _user_page(account: User, *, status_form=None, code: int = 200):
    from ..sso.connections import links_of_user
    memberships = services.memberships_of(account)
    sessions, last_activity = activity(account.id)
    return render_template("admin/user.html", account=account, memberships=memberships,
                           sso_links=links_of_user(account.id, [t.id for t, _, _ in memberships]),
                           sessions=sessions, last_activity=last_activity,
                           changed_by=db.session.get(User, account.status_changed_by) if account.status_changed_by
                           else None, status_form=status_form or UserStatusForm()), code


@bp.get("/users/<uuid:user_id>")
def user(user_id: UUID):
    return _user_page(_user_or_404(user_id))


@bp.post("/users/<uuid:user_id>/status")
def user_status(user_id: UUID):
    """Suspend with a reason, or reactivate."""
    account = _user_or_404(user_id)
    form = UserStatusForm()
    if form.validate():
        try:
            ended = services.set_user_status(current_user, account, form.action.data, form.reason.data)
        except RuleViolation as exc:
            db.session.rollback()
            form.reason.errors.append(exc.message)
        else:
            flash(f"{account.email} can sign in again." if form.action.data == "reactivate" else
                  f"{account.email} is suspended; {ended} session{'s' if ended != 1 else ''} ended.", "success")
            return redirect(url_for(".user", user_id=user_id), 303)
    return _user_page(_user_or_404(user_id), status_form=form, code=422)


@bp.post("/users/<uuid:user_id>/reset")
def send_reset(user_id: UUID):
    account = _user_or_404(user_id)
    if not account.is_active:
        flash(f"The account is {account.status.value}: reactivate it before sending a reset link.", "error")
    else:
        request_password_reset(account.email)
        flash(f"A password reset link is on its way to {account.email}.", "success")
    return redirect(url_for(".user", user_id=user_id), 303)


@bp.get("/security-events")
@replica.on_replica
def security_events():
    """Every account event (seed 004's security log), filtered, newest first."""
    state = Filter.from_args(request.args)
    rows, next_after = security_page(state)
    next_url = url_for(".security_events", **{**state.args(after=None), "after": next_after}) if next_after else None
    return render_template("admin/security_events.html", rows=rows, next_url=next_url, state=state,
                           kinds=KINDS, severities=SEVERITIES, describe=describe)
