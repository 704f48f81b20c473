"""SCIM filters as SQL. scim2-models parses and checks a filter (ScimFilter, bound to the
resource's model); this visitor turns its syntax tree into a SQLAlchemy condition on the
organization's rows, for the attributes the portal keeps in columns. Anything else is refused
with `invalidFilter` rather than answered wrongly.

Lists are bounded by the plan's user limit, so a count and an OFFSET page are cheap here
(SCIM pages by index, RFC 7644 §3.4.2.4)."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

from scim2_models.path import (AttrPath, CompareOperator, Comparison, FilterVisitor, LogicalExpr, LogicalOperator,
                               Not, Present, ValuePath)
from sqlalchemy import and_, false, func, literal, not_, or_, select, true
from sqlalchemy.dialects.postgresql import array

from ..extensions import db
from ..tenancy.models import Membership, MembershipStatus
from .errors import ScimError
from .models import ScimGroup, ScimGroupMember, ScimUser


def _like(op: CompareOperator, value: str) -> str:
    v = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")  # wildcards taken literally
    return {"co": f"%{v}%", "sw": f"{v}%", "ew": f"%{v}"}[op.value]


def _text(column, op: CompareOperator, value, *, case_exact: bool):
    if not isinstance(value, str):
        raise ScimError(400, "Compare this attribute with a string.", "invalidFilter")
    left, right = (column, value) if case_exact else (func.lower(column), value.lower())
    match op.value:
        case "eq":
            return left == right
        case "ne":
            return or_(left != right, column.is_(None))
        case "co" | "sw" | "ew":
            return left.like(_like(op, right), escape="\\")
        case "gt":
            return left > right
        case "ge":
            return left >= right
        case "lt":
            return left < right
        case "le":
            return left <= right
    raise ScimError(400, f"The operator {op.value} is not supported here.", "invalidFilter")


def _time(column, op: CompareOperator, value):
    try:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ScimError(400, "Compare a date with a dateTime, e.g. 2026-12-07T06:00:00Z.", "invalidFilter") from None
    ops = {"eq": column == when, "ne": column != when, "gt": column > when, "ge": column >= when,
           "lt": column < when, "le": column <= when}
    if op.value not in ops:
        raise ScimError(400, f"The operator {op.value} does not apply to dates.", "invalidFilter")
    return ops[op.value]


def _id(column, op: CompareOperator, value):
    if op.value not in ("eq", "ne"):
        raise ScimError(400, "Compare ids with eq or ne.", "invalidFilter")
    try:
        found = UUID(str(value))
    except ValueError:
        return false() if op.value == "eq" else true()  # no row has an id that is not one
    return column == found if op.value == "eq" else column != found


class _Sql(FilterVisitor):
    """Shared by Users and Groups; `attribute` maps one attribute path to a condition."""

    def visit_logical_expr(self, node: LogicalExpr):
        parts = [self.visit(t) for t in node.terms]
        return and_(*parts) if node.op == LogicalOperator.and_ else or_(*parts)

    def visit_not(self, node: Not):
        return not_(self.visit(node.expr))

    def visit_present(self, node: Present):
        return self.present(self._name(node.attr_path))

    def visit_comparison(self, node: Comparison):
        return self.compare(self._name(node.attr_path), node.op, node.value)

    def visit_value_path(self, node: ValuePath):
        # emails[value co "x"] / members[value eq "id"]: the inner filter names the sub-attribute.
        inner = node.val_filter
        if isinstance(inner, Comparison) and inner.attr_path.sub_attr is None and inner.attr_path.uri is None:
            return self.compare(f"{node.attr_path.attr.lower()}.{inner.attr_path.attr.lower()}", inner.op, inner.value)
        raise ScimError(400, f"This filter on {node.attr_path} is not supported.", "invalidFilter")

    @staticmethod
    def _name(path: AttrPath) -> str:
        name = path.attr.lower() + (f".{path.sub_attr.lower()}" if path.sub_attr else "")
        return {"emails": "emails.value", "members": "members.value"}.get(name, name)

    def unsupported(self, name: str):
        raise ScimError(400, f"Filtering on {name} is not supported.", "invalidFilter")


class UserFilter(_Sql):
    def present(self, name: str):
        columns = {"username": true(), "id": true(), "active": true(), "externalid": ScimUser.external_id.is_not(None),
                   "displayname": ScimUser.display_name.is_not(None),
                   "emails.value": func.cardinality(ScimUser.emails) > 0}
        return columns[name] if name in columns else self.unsupported(name)

    def compare(self, name: str, op: CompareOperator, value):
        if name == "username":
            return _text(ScimUser.user_name, op, value, case_exact=False)
        if name == "externalid":
            return _text(ScimUser.external_id, op, value, case_exact=True)
        if name == "displayname":
            return _text(ScimUser.display_name, op, value, case_exact=False)
        if name == "id":
            return _id(ScimUser.id, op, value)
        if name == "active":
            if op.value not in ("eq", "ne") or not isinstance(value, bool):
                raise ScimError(400, "Compare active with eq true or eq false.", "invalidFilter")
            return (Membership.status == MembershipStatus.ACTIVE) == (value if op.value == "eq" else not value)
        if name == "emails.value":
            if not isinstance(value, str):
                raise ScimError(400, "Compare emails with a string.", "invalidFilter")
            if op.value == "eq":
                return ScimUser.emails.contains(array([value.lower()]))
            if op.value in ("co", "sw", "ew"):
                email = func.unnest(ScimUser.emails).column_valued("email")
                return select(literal(1)).where(email.like(_like(op, value.lower()), escape="\\")).exists()
            raise ScimError(400, f"Compare emails with eq, co, sw or ew, not {op.value}.", "invalidFilter")
        if name in ("meta.created", "meta.lastmodified"):
            return _time(ScimUser.created_at if name == "meta.created" else ScimUser.updated_at, op, value)
        return self.unsupported(name)


class GroupFilter(_Sql):
    def present(self, name: str):
        columns = {"displayname": true(), "id": true(), "externalid": ScimGroup.external_id.is_not(None)}
        return columns[name] if name in columns else self.unsupported(name)

    def compare(self, name: str, op: CompareOperator, value):
        if name == "displayname":
            return _text(ScimGroup.display_name, op, value, case_exact=False)
        if name == "externalid":
            return _text(ScimGroup.external_id, op, value, case_exact=True)
        if name == "id":
            return _id(ScimGroup.id, op, value)
        if name == "members.value":
            if op.value != "eq":
                raise ScimError(400, "Compare members with eq.", "invalidFilter")
            try:
                member = UUID(str(value))
            except ValueError:
                return false()
            return select(ScimGroupMember.group_id).where(
                ScimGroupMember.tenant_id == ScimGroup.tenant_id, ScimGroupMember.group_id == ScimGroup.id,
                ScimGroupMember.scim_user_id == member).exists()
        if name in ("meta.created", "meta.lastmodified"):
            return _time(ScimGroup.created_at if name == "meta.created" else ScimGroup.updated_at, op, value)
        return self.unsupported(name)


def users_page(tenant_id: UUID, condition, start: int,
               count: int) -> tuple[int, list[tuple[ScimUser, MembershipStatus]]]:
    """(total, the page) of the organization's SCIM users matching `condition`, oldest first."""
    base = (select(ScimUser, Membership.status)
            .join(Membership, and_(Membership.tenant_id == ScimUser.tenant_id, Membership.user_id == ScimUser.user_id))
            .where(ScimUser.tenant_id == tenant_id))
    if condition is not None:
        base = base.where(condition)
    total = db.session.scalar(select(func.count()).select_from(base.subquery())) or 0
    if count == 0:
        return total, []
    rows = db.session.execute(base.order_by(ScimUser.created_at, ScimUser.id).offset(start - 1).limit(count)).all()
    return total, [(u, s) for u, s in rows]


def groups_page(tenant_id: UUID, condition, start: int, count: int) -> tuple[int, list[ScimGroup]]:
    base = select(ScimGroup).where(ScimGroup.tenant_id == tenant_id)
    if condition is not None:
        base = base.where(condition)
    total = db.session.scalar(select(func.count()).select_from(base.subquery())) or 0
    if count == 0:
        return total, []
    return total, list(db.session.scalars(base.order_by(ScimGroup.created_at, ScimGroup.id)
                                          .offset(start - 1).limit(count)))


def groups_of(tenant_id: UUID, scim_user_ids) -> dict[UUID, list[tuple[UUID, str]]]:
    """The groups of each of these users, for their resources (one statement per page)."""
    out: dict[UUID, list[tuple[UUID, str]]] = {}
    if not scim_user_ids:
        return out
    rows = db.session.execute(
        select(ScimGroupMember.scim_user_id, ScimGroup.id, ScimGroup.display_name)
        .join(ScimGroup, and_(ScimGroup.tenant_id == ScimGroupMember.tenant_id,
                              ScimGroup.id == ScimGroupMember.group_id))
        .where(ScimGroupMember.tenant_id == tenant_id, ScimGroupMember.scim_user_id.in_(list(scim_user_ids)))
        .order_by(func.lower(ScimGroup.display_name)))
    for user_id, group_id, name in rows:
        out.setdefault(user_id, []).append((group_id, name))
    return out


def members_of(tenant_id: UUID, group_ids) -> dict[UUID, list[tuple[UUID, str]]]:
    """The members of each of these groups (SCIM user id, userName)."""
    out: dict[UUID, list[tuple[UUID, str]]] = {}
    if not group_ids:
        return out
    rows = db.session.execute(
        select(ScimGroupMember.group_id, ScimUser.id, ScimUser.user_name)
        .join(ScimUser, and_(ScimUser.tenant_id == ScimGroupMember.tenant_id,
                             ScimUser.id == ScimGroupMember.scim_user_id))
        .where(ScimGroupMember.tenant_id == tenant_id, ScimGroupMember.group_id.in_(list(group_ids)))
        .order_by(func.lower(ScimUser.user_name)))
    for group_id, user_id, name in rows:
        out.setdefault(group_id, []).append((user_id, name))
    return out
