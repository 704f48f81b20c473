"""Two-factor authentication: TOTP (pyotp) with single-use backup codes."""
from __future__ import annotations

import logging
import secrets
import time

import pyotp
import segno
from sqlalchemy import delete, func, select, update

from ..accounts.models import User
from .. import keys
from ..database.context import user_scope
from ..extensions import db
from . import events
from .models import BackupCode

log = logging.getLogger("portal.security")
ISSUER = "Portal"
# TOTP secrets are sealed with the installation's data key (not SECRET_KEY): rotating SECRET_KEY
# leaves two-factor working, and `flask keys rotate --installation` re-seals them.
keys.register("users", "totp_secret", tenant_column=None)
BACKUP_CODES = 10


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_data_uri(secret: str, email: str) -> str:
    """The enrolment QR code as an SVG data URI (allowed by the CSP's img-src data:).
    svg_data_uri, not svg_inline: an SVG without xmlns does not render as an image. The white
    background keeps the dark modules readable on a dark page; the viewBox lets it scale."""
    return segno.make(provisioning_uri(secret, email), error="m").svg_data_uri(
        scale=4, light="#fff", omitsize=True)


def _totp(user: User) -> pyotp.TOTP | None:
    if user.totp_secret is None:
        return None
    try:
        secret = keys.unseal(user.totp_secret, tenant_id=None, table="users", column="totp_secret", row_id=user.id)
    except keys.Unreadable:
        # No code can match: the person recovers through an administrator (logged, never a 500).
        log.warning("the TOTP secret of user %s cannot be decrypted", user.id)
        return None
    return pyotp.TOTP(secret.decode())


def code_matches(secret: str, code: str) -> bool:
    return pyotp.TOTP(secret).verify(_clean(code), valid_window=1)


def _clean(code: str) -> str:
    return "".join(ch for ch in (code or "") if ch.isalnum())[:20]


def enable(user: User, secret: str) -> list[str]:
    """Turn two-factor on with a confirmed secret; returns the backup codes to show once."""
    user.totp_secret = keys.seal(secret.encode(), tenant_id=None, table="users", column="totp_secret",
                                 row_id=user.id)
    user.totp_enabled_at = func.now()
    user.totp_last_step = int(time.time()) // 30
    events.security("mfa.enable", user)
    return _new_backup_codes(user)


def disable(user: User) -> None:
    user.totp_secret = user.totp_enabled_at = user.totp_last_step = None
    db.session.execute(delete(BackupCode).where(BackupCode.user_id == user.id))
    events.security("mfa.disable", user)


def regenerate_backup_codes(user: User) -> list[str]:
    events.security("mfa.backup_codes_regenerated", user)
    return _new_backup_codes(user)


def _new_backup_codes(user: User) -> list[str]:
    db.session.execute(delete(BackupCode).where(BackupCode.user_id == user.id))
    codes = ["-".join([secrets.token_hex(3), secrets.token_hex(3)]) for _ in range(BACKUP_CODES)]
    for code in codes:
        db.session.add(BackupCode(user_id=user.id, code_hash=_code_hash(_clean(code).lower())))
    return codes


def _code_hash(code: str) -> bytes:
    """A lookup hash keyed by an installation secret (keys.lookup_hash), not by SECRET_KEY: the codes
    keep working when SECRET_KEY is rotated."""
    return keys.lookup_hash("backup-code", code)


def remaining_backup_codes(user: User) -> int:
    return db.session.scalar(select(func.count()).select_from(BackupCode).where(
        BackupCode.user_id == user.id, BackupCode.used_at.is_(None))) or 0


def verify(user: User, code: str) -> str | None:
    """'totp' or 'backup_code' when `code` is a valid second factor for `user` (each usable once)."""
    code = _clean(code)
    totp = _totp(user)
    if totp is None or not code:
        return None
    if code.isdigit() and len(code) == 6:
        for offset in (0, -1, 1):
            step = int(time.time()) // 30 + offset
            if secrets.compare_digest(totp.at(step * 30), code):
                # One guarded statement: of two requests racing with the same code, one wins;
                # a replayed code, even within its window, fails.
                won = db.session.execute(update(User).where(
                    User.id == user.id, func.coalesce(User.totp_last_step, -1) < step)
                    .values(totp_last_step=step).returning(User.id)).scalar()
                if won is None:
                    return None
                db.session.refresh(user, ["totp_last_step"])
                return "totp"
        return None
    # As the account (RLS): at sign-in its password is proved and the session not yet made.
    with user_scope(db.session, user.id):
        used = db.session.execute(update(BackupCode).where(
            BackupCode.user_id == user.id, BackupCode.used_at.is_(None),
            BackupCode.code_hash == _code_hash(code.lower()))
            .values(used_at=func.now()).returning(BackupCode.id)).scalar()
        if used:
            events.security("mfa.backup_code_used", user, remaining=remaining_backup_codes(user))
    return "backup_code" if used else None
