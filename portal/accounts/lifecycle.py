"""An account's life: its status (active, suspended, deactivated, deleted), who may sign in,
ending someone's access at once, and names.

This module stands under the areas (it imports none): what "ending access" means is registered
by the areas that own each kind of access (portal.security: web sessions and emailed account
links; the OAuth area: its grants), as tenancy's entry_checks are. Scrubbing a deleted person's
data works the same way (`scrubbers`). The pages and jobs that use it are portal.profile
(deletion, export), portal.admin (suspend, reactivate) and portal.signin (the refusal)."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from uuid import UUID

from flask import current_app

from .models import DELETED_USER, User, UserStatus

__all__ = ["DELETED_USER", "UserStatus", "AccountUnavailable", "end_access", "enders", "scrubbers", "set_status",
           "refusal", "grace_days", "split_name", "join_name", "tombstone", "LOCALES"]

# (name, ender): ender(user_id, tenant_id) ends one kind of access and returns how many ended.
# tenant_id None: everywhere; otherwise only what belongs to that tenant.
enders: list[tuple[str, Callable[[UUID, UUID | None], int]]] = []
# scrubber(user_id) deletes or blanks one area's personal data of a deleted account.
scrubbers: list[tuple[str, Callable[[UUID], int]]] = []

# The locales offered for dates and numbers (BCP 47); the portal's words stay English.
LOCALES = {"en-GB": "English (United Kingdom)", "en-US": "English (United States)", "de-DE": "Deutsch (Deutschland)",
           "es-ES": "Español (España)", "fr-FR": "Français (France)", "it-IT": "Italiano (Italia)",
           "nl-NL": "Nederlands (Nederland)", "pt-BR": "Português (Brasil)", "sv-SE": "Svenska (Sverige)",
           "ja-JP": "日本語 (日本)"}


class AccountUnavailable(Exception):
    """Raised where a sign-in would complete for an account that may not sign in."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def register_ender(name: str, ender: Callable[[UUID, UUID | None], int]) -> None:
    if all(existing != name for existing, _ in enders):
        enders.append((name, ender))


def register_scrubber(name: str, scrubber: Callable[[UUID], int]) -> None:
    if all(existing != name for existing, _ in scrubbers):
        scrubbers.append((name, scrubber))


def end_access(user_id: UUID, *, tenant_id: UUID | None = None, reason: str) -> dict[str, int]:
    """End the person's web sessions, emailed account links and tokens now (everywhere, or only
    what belongs to one tenant). `reason` says why, for the log. Flushes, never commits.
    Returns {kind: how many ended}."""
    ended = {name: ender(user_id, tenant_id) for name, ender in enders}
    current_app.logger.info("ended access of %s%s (%s): %s", user_id,
                            f" in tenant {tenant_id}" if tenant_id else "", reason, ended)
    return ended


def set_status(user: User, status: UserStatus, *, by: UUID | None, reason: str | None) -> dict[str, int]:
    """Change the status with who, when and why; anything but active ends access at once.
    Returns what end_access ended ({} when the account stays usable)."""
    now = datetime.now(timezone.utc)
    user.status, user.is_active = status, status == UserStatus.ACTIVE
    user.status_reason = (reason or "").strip()[:500] or None
    user.status_changed_at, user.status_changed_by = now, by
    if status == UserStatus.ACTIVE:
        user.deletion_requested_at = user.deletion_due_at = None
        return {}
    return end_access(user.id, reason=f"account {status.value}")


def grace_days() -> int:
    return int(current_app.config["ACCOUNT_DELETION_GRACE_DAYS"])


def refusal(user: User) -> tuple[str, str] | None:
    """(login-history reason, message for the person) when the account may not sign in, else
    None. Said only to someone who has proved the password (or their identity provider)."""
    status = UserStatus(user.status) if user.status else UserStatus.ACTIVE
    if status == UserStatus.ACTIVE:
        return None
    if status == UserStatus.SUSPENDED:
        why = f" The reason given: {user.status_reason}" if user.status_reason else ""
        return "suspended", (f"Your account is suspended by the portal's administrators.{why} "
                             "Contact them if you think this is a mistake.")
    if status == UserStatus.DEACTIVATED and user.deletion_due_at is not None:
        return "deletion_pending", (f"Your account is scheduled for deletion on {user.deletion_due_at:%d %B %Y}. "
                                    "Sign in with your password to cancel the deletion.")
    if status == UserStatus.DEACTIVATED:
        return "deactivated", "Your account is deactivated. Contact the portal's administrators to use it again."
    return "deleted", "This account was deleted."


def split_name(name: str) -> tuple[str, str]:
    """A full name as given and family names, at the first space (as migration 0019 did)."""
    given, _, family = " ".join((name or "").split()).partition(" ")
    return given[:100], family[:100]


def join_name(given: str, family: str) -> str:
    """The display name: given then family name, as people write them in most of the portal's
    locales; a person who prefers otherwise writes both in the given-name field."""
    return " ".join(part for part in (given.strip(), family.strip()) if part)[:200]


def tombstone(user_id: UUID) -> str:
    """The email a deleted account keeps: unique, never deliverable (.invalid, RFC 2606)."""
    return f"deleted-{user_id}@invalid"
