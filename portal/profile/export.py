"""A person's own data as a zip of JSON files (GDPR art. 15 and 20): their account, memberships,
sessions, sign-ins, security events, notifications and preferences. Asked for on /account/data,
written by the worker (`accounts.export`), and emailed as a link that works LINK_HOURS, only
while signed in as that person; only the link token's SHA-256 is kept. No secrets are in it:
no password hash, second-factor secret, session or link token."""
from __future__ import annotations

import hashlib
import json
import secrets
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

from flask import current_app
from sqlalchemy import func, select

from ..accounts.models import AccountExport, User
from ..database.context import user_scope
from ..extensions import db
from ..jobs.engine import defer
from ..mail.outbox import enqueue
from ..notifications.models import Notification, NotificationPreference
from ..rules import RuleViolation
from ..security import events
from ..security.models import LoginEvent, SecurityEvent, UserSession
from ..tenancy import roles
from ..tenancy.models import Membership
from ..tenants.models import Tenant

LINK_HOURS = 24


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def export_dir() -> Path:
    path = Path(current_app.config["EXPORT_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_of(export: AccountExport) -> Path:
    return export_dir() / f"account-{export.user_id}-{export.id}.zip"


def remove_files(user_id: UUID) -> None:
    for path in export_dir().glob(f"account-{user_id}-*.zip"):
        path.unlink(missing_ok=True)


def latest(user_id: UUID) -> AccountExport | None:
    return db.session.scalar(select(AccountExport).where(AccountExport.user_id == user_id)
                             .order_by(AccountExport.created_at.desc()).limit(1))


def request_export(user: User) -> AccountExport:
    """Queue an export (one at a time); the worker writes it and emails the link."""
    pending = db.session.scalar(select(func.count()).select_from(AccountExport).where(
        AccountExport.user_id == user.id, AccountExport.status.in_(("queued", "running"))))
    if pending:
        raise RuleViolation("Your export is already being made: the link arrives by email when it is ready.")
    export = AccountExport(user_id=user.id)
    db.session.add(export)
    db.session.flush()  # the job names the row
    events.security("account.export_requested", user)
    defer("accounts.export", export_id=str(export.id), user_id=str(user.id))
    return export


def _rows(stmt, columns: tuple[str, ...]) -> list[dict]:
    return [{c: getattr(row, c) for c in columns} for row in db.session.scalars(stmt)]


def collect(user: User) -> dict[str, object]:
    """Everything the zip holds, file name -> JSON value (read in the person's own RLS scope)."""
    account = {"id": user.id, "email": user.email, "name": user.name, "given_name": user.given_name,
               "family_name": user.family_name, "status": user.status.value, "created_at": user.created_at,
               "email_verified_at": user.email_verified_at, "last_login_at": user.last_login_at,
               "login_count": user.login_count, "timezone": user.timezone, "locale": user.locale,
               "two_factor_enabled_at": user.totp_enabled_at, "single_sign_on_issuer": user.oidc_issuer,
               "password_changed_at": user.password_changed_at, "has_avatar": user.avatar_version is not None}
    memberships = [{"organization": t.name, "address": f"/t/{t.slug}", "role": roles.role_of(m).name,
                    "status": m.status.value, "joined_at": m.created_at, "last_active_at": m.last_active_at}
                   for t, m in db.session.execute(select(Tenant, Membership).join(
                       Membership, Membership.tenant_id == Tenant.id).where(Membership.user_id == user.id)
                       .order_by(Tenant.name))]
    return {
        "account.json": account,
        "memberships.json": memberships,
        "sessions.json": _rows(select(UserSession).where(UserSession.user_id == user.id)
                               .order_by(UserSession.created_at.desc()),
                               ("created_at", "last_seen_at", "expires_at", "revoked_at", "ip_address", "user_agent")),
        "sign_ins.json": _rows(select(LoginEvent).where(LoginEvent.user_id == user.id)
                               .order_by(LoginEvent.created_at.desc()),
                               ("created_at", "success", "reason", "method", "ip_address", "user_agent")),
        "security_events.json": [
            {**row, "description": events.describe(row["event"])} for row in _rows(
                select(SecurityEvent).where(SecurityEvent.user_id == user.id).order_by(SecurityEvent.created_at.desc()),
                ("created_at", "event", "severity", "details", "ip_address", "user_agent"))],
        "notifications.json": _rows(select(Notification).where(Notification.user_id == user.id)
                                    .order_by(Notification.created_at.desc()),
                                    ("created_at", "kind", "params", "link", "read_at")),
        "notification_preferences.json": _rows(select(NotificationPreference).where(
            NotificationPreference.user_id == user.id), ("kind", "channel", "updated_at")),
    }


def write(export: AccountExport, user: User) -> Path:
    path = file_of(export)
    files = collect(user)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in files.items():
            zf.writestr(name, json.dumps(value, indent=2, default=str, ensure_ascii=False))
        zf.writestr("README.txt", "Your Portal account's data, as JSON files, made "
                    f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n")
    return path


def run(export_id: UUID, user_id: UUID) -> None:
    """The job's body: write the zip, keep the token's hash, email the link; failures recorded."""
    with user_scope(db.session, user_id):
        export = db.session.scalar(select(AccountExport).where(AccountExport.id == export_id).with_for_update())
        if export is None or export.status != "queued":
            return
        export.status = "running"
        db.session.commit()
    with user_scope(db.session, user_id):
        export = db.session.get(AccountExport, export_id)
        user = db.session.get(User, user_id)
        try:
            path = write(export, user)
        except Exception as exc:  # noqa: BLE001 (recorded on the export, shown to the person)
            db.session.rollback()
            export = db.session.get(AccountExport, export_id)
            export.status, export.error = "failed", str(exc)[:500]
            export.finished_at = datetime.now(timezone.utc)
            db.session.commit()
            raise
        token = secrets.token_urlsafe(32)
        export.status, export.size_bytes = "done", path.stat().st_size
        export.finished_at = datetime.now(timezone.utc)
        export.token_hash, export.expires_at = hash_token(token), export.finished_at + timedelta(hours=LINK_HOURS)
        # Written out, not url_for: the worker has no request (the route is profile.download_export).
        link = current_app.config["BASE_URL"] + f"/account/data/export/{token}"
        enqueue("account_export", user.email, "Your Portal data export is ready", "account_export",
                user=user, export=export, link=link, hours=LINK_HOURS)
        db.session.commit()


def for_download(user_id: UUID, token: str) -> AccountExport | None:
    """The person's own finished export whose link this is, while the link works."""
    if not token or len(token) > 200:
        return None
    return db.session.scalar(select(AccountExport).where(
        AccountExport.user_id == user_id, AccountExport.token_hash == hash_token(token),
        AccountExport.status == "done", AccountExport.expires_at > func.now()))
