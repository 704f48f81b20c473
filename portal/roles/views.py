"""/t/<slug>/roles: list, create (optionally from an existing role), edit and delete roles."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from ..extensions import db
from ..rules import RuleViolation
from ..tenancy import Permission, current, requires, roles, tenant_blueprint
from ..tenancy.permissions import CATALOGUE, grouped
from . import services
from .forms import DeleteRoleForm, RoleForm

bp = tenant_blueprint("roles", __name__, "/roles")


def _role_or_404(key: str) -> roles.Role:
    return services.get_role(current(), key) or abort(404)


@bp.get("/")
@requires(Permission.ROLES_MANAGE)
def index():
    ctx = current()
    return render_template("roles/index.html", roles=roles.tenant_roles(ctx.tenant_id),
                           counts=services.member_counts(ctx), catalogue=grouped(CATALOGUE))


def _form_page(form: RoleForm, role=None, status: int = 200):
    ctx = current()
    # The role being edited is the column of checkboxes; the others are there to compare.
    compare = [r for r in roles.tenant_roles(ctx.tenant_id) if role is None or r.key != role.key]
    return render_template("roles/form.html", form=form, role=role, catalogue=grouped(CATALOGUE),
                           compare=compare, held=ctx.permissions), status


def _save(form: RoleForm, action, role=None):
    """Validate, run the service, back to the list; re-render with inline errors otherwise."""
    if not form.validate_on_submit():
        return _form_page(form, role, 422 if request.method == "POST" else 200)
    try:
        saved = action(form.to_data())
    except RuleViolation as exc:
        db.session.rollback()
        getattr(form, exc.field or "name").errors.append(exc.message)
        return _form_page(form, role, 422)
    flash(f"Saved the role {saved.name}.", "success")
    return redirect(url_for(".index"), 303)


@bp.route("/new", methods=["GET", "POST"])
@requires(Permission.ROLES_MANAGE)
def create():
    ctx = current()
    form = RoleForm()
    if request.method == "GET":
        start = services.get_role(ctx, request.args.get("from", ""))
        form = RoleForm.for_role(start, copy=True) if start else RoleForm(formdata=None)
    return _save(form, lambda data: services.create_role(ctx, data))


@bp.route("/<role_key>/edit", methods=["GET", "POST"])
@requires(Permission.ROLES_MANAGE)
def edit(role_key: str):
    ctx = current()
    role = _role_or_404(role_key)
    if not role.is_custom:
        abort(404)
    form = RoleForm() if request.method == "POST" else RoleForm.for_role(role)
    return _save(form, lambda data: services.update_role(ctx, role, data), role)


def _deletion(role_key: str):
    ctx = current()
    role = _role_or_404(role_key)
    if not role.is_custom:
        abort(404)
    form = DeleteRoleForm(choices=[r for r in roles.assignable_roles(ctx) if r.key != role.key])
    return ctx, role, form


def _delete_page(role, form, status: int = 200):
    members = services.member_counts(current()).get(role.key, 0)
    return render_template("roles/delete.html", role=role, form=form, members=members), status


@bp.get("/<role_key>/delete")
@requires(Permission.ROLES_MANAGE)
def deletion_page(role_key: str):
    """Asks where the role's members go before anything is deleted."""
    _, role, form = _deletion(role_key)
    return _delete_page(role, form)


@bp.post("/<role_key>/delete")
@requires(Permission.ROLES_MANAGE)
def delete(role_key: str):
    """Deletes the role and moves its members and invitations, in one transaction."""
    ctx, role, form = _deletion(role_key)
    if not form.validate_on_submit():
        return _delete_page(role, form, 422)
    fallback = roles.resolve(ctx.tenant_id, form.fallback.data)
    try:
        moved = services.delete_role(ctx, role, fallback)
    except RuleViolation as exc:
        db.session.rollback()
        form.fallback.errors.append(exc.message)
        return _delete_page(role, form, 422)
    moved_text = f" {moved} member{'s' if moved != 1 else ''} moved to {fallback.name}." if moved else ""
    flash(f"Deleted the role {role.name}.{moved_text}", "success")
    return redirect(url_for(".index"), 303)
