"""Reading a tenant's invitations: by status, newest first, keyset-paged both ways."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select, tuple_

from ..database.paging import Position, position
from ..extensions import db
from ..mail.outbox import failed_about, failure_text
from ..tenancy import TenantContext
from .models import Invitation, InvitationStatus

PAGE_SIZE = 50
FILTERS = ("pending", "expired", "accepted", "declined", "cancelled")


def _conditions(ctx: TenantContext, status: str) -> tuple:
    if status == "pending":
        return (Invitation.tenant_id == ctx.tenant_id, Invitation.status == InvitationStatus.PENDING,
                Invitation.expires_at > func.now())
    if status == "expired":
        return (Invitation.tenant_id == ctx.tenant_id,
                (Invitation.status == InvitationStatus.EXPIRED) |
                ((Invitation.status == InvitationStatus.PENDING) & (Invitation.expires_at <= func.now())))
    return Invitation.tenant_id == ctx.tenant_id, Invitation.status == InvitationStatus(status)


def cursor(invitation: Invitation) -> str:
    return f"{invitation.created_at.isoformat()}|{invitation.id}"


def _decode(value: str) -> tuple[datetime, UUID] | None:
    try:
        created, id_ = value.split("|", 1)
        return datetime.fromisoformat(created), UUID(id_)
    except ValueError:
        return None


def invitation_page(ctx: TenantContext, status: str, after: str = "", before: str = ""
                    ) -> tuple[list[Invitation], str | None, str | None, Position]:
    """The page after cursor `after` (or before `before`), the next and previous cursors, and
    the page's position among the matches (a capped count, one statement)."""
    where = _conditions(ctx, status)
    key = tuple_(Invitation.created_at, Invitation.id)
    newest_first = (Invitation.created_at.desc(), Invitation.id.desc())
    after_pos, before_pos = _decode(after) if after else None, _decode(before) if before else None
    backwards = before_pos is not None and after_pos is None
    stmt = select(Invitation).where(*where).limit(PAGE_SIZE + 1)
    if after_pos:
        stmt = stmt.where(key < tuple_(*after_pos)).order_by(*newest_first)
    elif backwards:
        stmt = stmt.where(key > tuple_(*before_pos)).order_by(Invitation.created_at, Invitation.id)
    else:
        stmt = stmt.order_by(*newest_first)
    rows = list(db.session.scalars(stmt))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if backwards:
        rows.reverse()
        if not rows:  # nothing newer any more: the first page
            return invitation_page(ctx, status)
        next_after, prev_before = cursor(rows[-1]), (cursor(rows[0]) if more else None)
    else:
        next_after = cursor(rows[-1]) if more else None
        prev_before = cursor(rows[0]) if after_pos and rows else None
    first = (rows[0].created_at, rows[0].id) if rows else None
    pos = position(select(Invitation.created_at, Invitation.id).where(*where).order_by(*newest_first), len(rows),
                   (lambda c: tuple_(c.created_at, c.id) > tuple_(*first)) if first else None)
    return rows, next_after, prev_before, pos


def undelivered(rows: list[Invitation]) -> dict[UUID, str]:
    """{invitation id: why its latest email failed for good}, for the rows that have such a notice."""
    return {about_id: failure_text(message) for about_id, message in failed_about(i.id for i in rows).items()}
