"""/api/v1/roles and /api/v1/members: the organization's roles and who holds which, for API
clients and apps acting for a person, through the same services, rules and audit as the members
page. Here rather than in portal/api/v1.py because the members area already imports portal.api
(grants end with a membership); the operations are in portal.api.openapi's table."""
from __future__ import annotations

from uuid import UUID

from flask import Blueprint, Flask, url_for

from ..api import auth, schemas
from ..api.conventions import body, check_if_match, cursor, document, query, refused, uncursor
from ..api.problems import Problem
from ..extensions import csrf
from ..rules import RuleViolation
from ..sites.queries import site_access
from ..tenancy import Permission, TenantContext, current, roles
from ..tenancy.models import Membership
from ..tenancy.queries import lock_tenant
from . import services

bp = Blueprint("members_api", __name__, url_prefix="/api/v1")


@bp.before_request
def _enter():
    auth.enter()


def role_document(role: roles.Role) -> dict:
    return {"key": role.key, "name": role.name, "description": role.description,
            "kind": "custom" if role.is_custom else "system", "permissions": sorted(p.value for p in role.permissions)}


@bp.get("/roles")
@auth.scope(Permission.MEMBERS_VIEW)
def list_roles():
    """Every role of the organization (at most 4 + 50: one answer, no pages)."""
    query(schemas.Query())  # takes no parameters: one sent is a 422 naming it
    return document({"items": [role_document(r) for r in roles.tenant_roles(current().tenant_id)]}, etag=False)


def member_documents(ctx: TenantContext, members: list[Membership]) -> list[dict]:
    """Roles from the request's role book and further roles (one statement each, whatever the
    number of members), the sites from site_access (two)."""
    access = site_access(ctx.tenant_id, [m.user_id for m in members])
    active = {s.id for s in access.sites}
    out = []
    for m in members:
        role, base = roles.role_of(m), roles.base_of(m)
        out.append(schemas.MemberOut().dump({
            "user_id": m.user_id, "email": m.user.email, "name": m.user.name, "status": m.status.value,
            "role": base.key, "roles": [{"key": base.key, "name": base.name}]
            + [{"key": r.key, "name": r.name} for r in role.further],
            "permissions": sorted(p.value for p in role.permissions), "all_sites": role.sees_all,
            "site_ids": sorted(access.of(m.user_id) & active, key=str)}))
    return out


def _member(user_id: UUID) -> Membership:
    member = services.get_membership(current(), user_id)
    if member is None:
        raise Problem(404, "No such member.")
    return member


@bp.get("/members")
@auth.scope(Permission.MEMBERS_VIEW)
def list_members():
    """Members by email, 50 a page, as the members page lists them (`q`: part of name or email)."""
    args = query(schemas.MemberListArgs())
    ctx = current()
    after = uncursor(args["cursor"]) if args.get("cursor") else ""
    members, following, _ = services.list_members(ctx, args.get("q", ""), after)
    next_url = url_for(".list_members", cursor=cursor(following), **({"q": args["q"]} if args.get("q") else {})) \
        if following else None
    return document({"items": member_documents(ctx, members), "next": next_url}, etag=False,
                    headers={"Link": f'<{next_url}>; rel="next"'} if next_url else {})


@bp.get("/members/<uuid:user_id>")
@auth.scope(Permission.MEMBERS_VIEW)
def get_member(user_id: UUID):
    return document(member_documents(current(), [_member(user_id)])[0])


def role_set(ctx: TenantContext, keys: list[str]) -> tuple[roles.Role, list[roles.Role]]:
    """The base role and the further roles a PATCH names: at most one built-in role, the base
    when given, else the first listed. What is wrong is a 422 naming the item."""
    book = roles.book(ctx.tenant_id)
    errors, chosen, seen = [], [], set()
    for i, key in enumerate(keys):
        try:
            key = str(UUID(key))  # a custom role's id in any spelling UUID accepts
        except ValueError:
            pass
        role = book.get(key)
        if role is None:
            errors.append({"field": f"roles.{i}", "detail": "Not a role of this organization (GET /api/v1/roles)."})
        elif key in seen:
            errors.append({"field": f"roles.{i}", "detail": f"{role.name} is listed twice."})
        else:
            seen.add(key)
            chosen.append(role)
    if sum(1 for r in chosen if not r.is_custom) > 1:
        errors.append({"field": "roles", "detail": "Give at most one built-in role (owner, admin, member, viewer): "
                                                   "they nest, so a member holds one of them."})
    if errors:
        raise Problem(422, "Some fields are not valid.", errors=errors)
    base = next((r for r in chosen if not r.is_custom), chosen[0])
    return base, [r for r in chosen if r is not base]


@bp.patch("/members/<uuid:user_id>")
@auth.scope(Permission.MEMBERS_MANAGE)
def update_member(user_id: UUID):
    """Exactly these roles: the base role first (members.services.change_role), then the further
    ones (set_further_roles), in one transaction, under the page's rules."""
    ctx = current()
    lock_tenant(ctx.tenant)  # first (the lock order): If-Match is checked against the version changed
    target = _member(user_id)
    check_if_match(member_documents(ctx, [target])[0])
    base, further = role_set(ctx, body(schemas.MemberPatch())["roles"])
    try:
        services.change_role(ctx, target, base)
        services.set_further_roles(ctx, target, further)
    except RuleViolation as exc:
        # The services name the page's fields (role, roles): here both are the one `roles` list.
        raise refused(RuleViolation(exc.message, field="roles" if exc.field else None)) from None
    roles.forget()
    return document(member_documents(ctx, [target])[0])


def init_app(app: Flask) -> None:
    csrf.exempt(bp)  # bearer tokens, never cookies (as portal/api)
    app.register_blueprint(bp)
