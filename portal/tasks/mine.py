"""/tasks: the signed-in user's tasks across every organization they belong to, grouped by
organization. One call of the SECURITY DEFINER function `portal_my_tasks` (migration 0011),
which answers only for the transaction's user (app.user_id) and only in tenants where they are
an active member holding tasks:view; row-level security stays on for everything else."""
from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from flask import Blueprint, render_template
from flask_login import login_required
from sqlalchemy import text

from ..extensions import db

bp = Blueprint("mytasks", __name__)
LIMIT = 200


@dataclass(frozen=True)
class TenantRef:
    id: UUID
    name: str
    slug: str


def my_tasks(limit: int = LIMIT) -> list[tuple[TenantRef, list]]:
    rows = db.session.execute(text("SELECT * FROM portal_my_tasks(:limit)"), {"limit": limit}).all()
    groups: dict[UUID, tuple[TenantRef, list]] = {}
    for row in rows:
        groups.setdefault(row.tenant_id, (TenantRef(row.tenant_id, row.tenant_name, row.tenant_slug), []))[1].append(row)
    return list(groups.values())


@bp.get("/tasks")
@login_required
def index():
    groups = my_tasks(LIMIT + 1)
    truncated = sum(len(rows) for _, rows in groups) > LIMIT
    if truncated:  # the extra row only says there is more
        groups[-1][1].pop()
        groups = [g for g in groups if g[1]]
    return render_template("tasks/mine.html", groups=groups, truncated=truncated, limit=LIMIT)
