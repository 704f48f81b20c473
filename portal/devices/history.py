"""A device's audit rows in words: "Alice Johnson changed status from online to maintenance"."""
from __future__ import annotations

from uuid import UUID

from sqlalchemy import select

from ..accounts.models import User
from ..audit import actor_label
from ..audit.models import AuditLog
from ..extensions import db

FIELDS = {"name": "name", "type": "type", "serial_number": "serial number", "firmware_version": "firmware",
          "last_seen_at": "last seen", "metadata": "specs and configuration", "site_id": "site"}


def actor_names(entries: list[AuditLog]) -> dict[UUID, str]:
    """Who did each change, in one statement (users are a global table)."""
    ids = {e.user_id for e in entries if e.user_id}
    if not ids:
        return {}
    return {u.id: u.name or u.email for u in db.session.scalars(select(User).where(User.id.in_(ids)))}


def describe(entry: AuditLog, actor: str | None, site_names: dict[str, str] | None = None) -> str:
    label = actor_label(entry.details)
    who = actor or (label[0].upper() + label[1:] if label else "Someone")
    before, after = entry.before or {}, entry.after or {}
    if entry.action == "device.create":
        return f"{who} added {after.get('name', 'the device')}"
    if entry.action == "device.status":
        return f"{who} changed status from {before.get('status')} to {after.get('status')}"
    if entry.action == "device.decommission":
        return f"{who} decommissioned {before.get('name', 'the device')}"
    if entry.action == "device.move":
        names = site_names or {}
        source = names.get(str(before.get("site_id")), "another site")
        target = after.get("site") or names.get(str(after.get("site_id")), "another site")
        return f"{who} moved it from {source} to {target}"
    if entry.action == "device.update":
        names = site_names or {}
        parts = []
        for key, value in after.items():
            old = before.get(key)
            if old == value:
                continue
            label = FIELDS.get(key, key.replace("_", " "))
            if key == "metadata":
                parts.append(label)
            elif key == "site_id":
                parts.append(f"site from {names.get(str(old), 'another site')} to {names.get(str(value), 'another site')}")
            else:
                parts.append(f"{label} from {old if old not in (None, '') else 'nothing'} to "
                             f"{value if value not in (None, '') else 'nothing'}")
        if not parts:
            return f"{who} saved it unchanged"
        return f"{who} changed " + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0])
    credential = {"agent.credential_issue": "gave it an agent credential",
                  "agent.credential_rotate": "rotated its agent credential",
                  "agent.credential_revoke": "revoked its agent credential"}.get(entry.action)
    if credential:
        return f"{who} {credential}"
    return f"{who}: {entry.action.replace('.', ' ')}"
