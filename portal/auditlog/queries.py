"""Reading the audit trail: filters from the URL, keyset pages newest first, and a streamed
read for exports. Every query runs under the tenant's RLS and names the tenant explicitly."""
from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterator
from uuid import UUID

from sqlalchemy import Select, and_, or_, select

from ..accounts.models import User
from ..database.search import contains_pattern
from ..extensions import db
from ..tenancy.models import Membership
from ..audit.models import AuditLog

PAGE_SIZE = 50
TEXT_MAX = 100

# The kinds of rows the portal writes, for the filter menus (a filter value outside them still works).
RESOURCE_TYPES = ("device", "site", "site_assignment", "membership", "invitation", "tenant", "audit", "task", "role",
                  "api_client")
ACTIONS = (
    "device.create", "device.update", "device.status", "device.move", "device.decommission", "device.import",
    "site.create", "site.update", "site.archive", "site.restore", "site.delete", "site.assign", "site.unassign",
    "member.role_change", "member.suspend", "member.reactivate", "member.remove", "member.leave",
    "member.transfer_ownership", "invitation.create", "invitation.resend", "invitation.cancel",
    "invitation.accept", "invitation.decline", "tenant.create", "audit.export", "audit.retention", "audit.prune",
    "task.create", "task.update", "task.status", "task.assign", "task.comment",
    "agent.credential_issue", "agent.credential_rotate", "agent.credential_revoke", "agent_task.queue",
    "agent_task.cancel", "agent_task.claim", "agent_task.result", "agent_task.expire",
    "role.create", "role.update", "role.delete", "api_client.create", "api_client.rotate", "api_client.disable",
    "api_client.enable", "api_client.delete", "tenant.update", "tenant.security_policy", "tenant.plan",
    "member.provision", "member.scim_update", "scim_token.create", "scim_token.rotate", "scim_token.revoke",
    "scim_group.create", "scim_group.update", "scim_group.delete",
)


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except (TypeError, ValueError, AttributeError):
        return None


@dataclass(frozen=True)
class AuditFilter:
    """The viewer's state, read from (and written back to) the URL. Malformed values are
    dropped with a message in `problems`, never an error page."""
    actor: UUID | None = None
    action: str = ""
    resource_type: str = ""
    resource_id: str = ""
    since: date | None = None
    until: date | None = None
    q: str = ""
    after: int | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_args(cls, args) -> AuditFilter:
        problems: list[str] = []

        def text(name: str, limit: int = TEXT_MAX) -> str:
            return " ".join(args.get(name, "").split())[:limit]

        def day(name: str, label: str) -> date | None:
            raw = args.get(name, "").strip()
            if not raw:
                return None
            try:
                return date.fromisoformat(raw)
            except ValueError:
                problems.append(f"“{raw[:20]}” is not a date ({label}); use the form YYYY-MM-DD.")
                return None

        actor_raw = args.get("actor", "").strip()
        actor = _uuid(actor_raw)
        if actor_raw and actor is None:
            problems.append("That actor is not one of this organization's people; showing everyone.")
        since, until = day("from", "from"), day("to", "to")
        if since and until and since > until:
            problems.append("The start date is after the end date: nothing can match, so the dates were swapped.")
            since, until = until, since
        after_raw = args.get("after", "")
        after = int(after_raw) if after_raw.isdigit() and len(after_raw) < 19 else None
        return cls(actor=actor, action=text("action"), resource_type=text("type"), resource_id=text("resource"),
                   since=since, until=until, q=text("q"), after=after, problems=tuple(problems))

    def args(self, **changes) -> dict:
        state = replace(self, **changes)
        out = {"actor": state.actor, "action": state.action, "type": state.resource_type,
               "resource": state.resource_id, "from": state.since and state.since.isoformat(),
               "to": state.until and state.until.isoformat(), "q": state.q, "after": state.after}
        return {k: str(v) for k, v in out.items() if v}

    @property
    def filtered(self) -> bool:
        return bool(self.actor or self.action or self.resource_type or self.resource_id or self.since
                    or self.until or self.q)

    def describe(self) -> dict:
        """For the export's own audit row."""
        return self.args(after=None)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


COLUMNS = (AuditLog.seq, AuditLog.id, AuditLog.created_at, AuditLog.user_id, AuditLog.action,
           AuditLog.resource_type, AuditLog.resource_id, AuditLog.before, AuditLog.after, AuditLog.details,
           AuditLog.ip_address, AuditLog.user_agent, AuditLog.request_id, AuditLog.row_hash,
           User.name.label("actor_name"), User.email.label("actor_email"))


def statement(tenant_id: UUID, f: AuditFilter) -> Select:
    stmt = (select(*COLUMNS).outerjoin(User, User.id == AuditLog.user_id)
            .where(AuditLog.tenant_id == tenant_id).order_by(AuditLog.seq.desc()))
    conditions = []
    if f.actor:
        conditions.append(AuditLog.user_id == f.actor)
    if f.action:
        conditions.append(AuditLog.action == f.action)
    if f.resource_type:
        conditions.append(AuditLog.resource_type == f.resource_type)
    if f.resource_id:
        conditions.append(AuditLog.resource_id == f.resource_id)
    if f.since:
        conditions.append(AuditLog.created_at >= _midnight(f.since))
    if f.until:
        conditions.append(AuditLog.created_at < _midnight(f.until + timedelta(days=1)))
    if f.q:
        pattern = contains_pattern(f.q)
        conditions.append(or_(AuditLog.action.ilike(pattern), AuditLog.resource_id == f.q,
                              AuditLog.after["name"].astext.ilike(pattern),
                              AuditLog.before["name"].astext.ilike(pattern),
                              AuditLog.after["email"].astext.ilike(pattern),
                              AuditLog.before["email"].astext.ilike(pattern),
                              # Tasks are named by their title; assignments by the site's name.
                              AuditLog.after["title"].astext.ilike(pattern),
                              AuditLog.before["title"].astext.ilike(pattern),
                              AuditLog.after["site"].astext.ilike(pattern),
                              # On audit_logs alone, so newest-first can stop after a page of matches.
                              AuditLog.user_id.in_(select(User.id).where(or_(User.name.ilike(pattern),
                                                                             User.email.ilike(pattern))))))
    return stmt.where(and_(*conditions)) if conditions else stmt


@dataclass
class Page:
    rows: list
    next_cursor: int | None
    state: AuditFilter


def page(tenant_id: UUID, f: AuditFilter, size: int = PAGE_SIZE) -> Page:
    """Newest first, `size` rows after the cursor (a chain position: stable at any depth)."""
    stmt = statement(tenant_id, f)
    if f.after is not None:
        stmt = stmt.where(AuditLog.seq < f.after)
    rows = db.session.execute(stmt.limit(size + 1)).all()
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows=rows, next_cursor=rows[-1].seq if more else None, state=f)


def stream(tenant_id: UUID, f: AuditFilter, batch: int = 1000) -> Iterator:
    """Every matching row, newest first, through a server-side cursor: memory stays flat."""
    result = db.session.execute(statement(tenant_id, f), execution_options={"yield_per": batch})
    yield from result


def actors(tenant_id: UUID) -> list:
    """The tenant's members, for the actor menu (former members are reached from their rows'
    links: a distinct over a million audit rows would cost more than the page)."""
    return db.session.execute(select(User.id, User.name, User.email)
                              .join(Membership, and_(Membership.user_id == User.id,
                                                     Membership.tenant_id == tenant_id))
                              .order_by(User.name, User.email)).all()


def encode_hash(value: bytes) -> str:
    return base64.b16encode(value).decode().lower()
