"""Who a provider's sign-in is: the linking rules. Services flush; the request edge commits.

1. An account linked to (issuer, subject) is that account, whatever the email claim says now.
2. Otherwise only a provider-verified email counts: it links the account with that email
   (case-insensitive), or creates one when the address has a pending invitation (read
   through the `invitation_email_read` policy) or OIDC_ALLOW_SIGNUP is on.
3. Anything else is refused with a message that tells the person only about their own address.
"""
from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import exists, func, select

from ..accounts import lifecycle
from ..accounts.models import User
from ..accounts.services import create_user, find_user_by_email, normalise_email
from ..database.context import set_context
from ..extensions import db
from ..invitations.models import Invitation, InvitationStatus
from ..oneline import control_character, one_line
from ..security import events
from ..tenants.models import Tenant

DISABLED = "This account is disabled. Ask an organization admin for help."


@dataclass
class Outcome:
    user: User | None
    reason: str  # "subject", "linked", "created" on success; the login history's reason otherwise
    email: str = ""
    message: str = ""
    user_id: UUID | None = None  # the account a refusal concerns, for the login history

    @property
    def ok(self) -> bool:
        return self.user is not None


def _refuse(reason: str, email: str, message: str, user: User | None = None) -> Outcome:
    return Outcome(None, reason, email, message, user.id if user else None)


def _unavailable(user: User, email: str) -> Outcome:
    """A suspended, deactivated or deleted account: told why (the provider has proved who this is).
    A deletion in its grace period is cancelled with the password (signin.views.deletion_pending)."""
    reason, message = lifecycle.refusal(user) or ("disabled", DISABLED)
    return _refuse(reason, email, message, user)


def _verified(claims: dict) -> bool:
    value = claims.get("email_verified")
    # Some providers send the boolean as a string.
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _plausible(email: str) -> bool:
    local, at, domain = email.rpartition("@")
    return bool(at and local and domain and "@" not in local and len(email) <= 320 and " " not in email
                and control_character(email) is None)


def _name(claims: dict) -> str:
    name = claims.get("name") or " ".join(
        str(claims[k]) for k in ("given_name", "family_name") if claims.get(k)) or claims.get("preferred_username")
    # The provider's word, not a form: made one line rather than refused (the name reaches email subjects).
    return one_line(str(name or ""))[:200].strip()


def has_pending_invitation(email: str) -> bool:
    """Whether `email` has a pending, unexpired invitation to a usable organization. Reads across
    tenants only through `invitation_email_read` (app.verified_email), set for this one query."""
    set_context(db.session, verified_email=email)
    try:
        return bool(db.session.scalar(select(exists().where(
            func.lower(Invitation.email) == email, Invitation.status == InvitationStatus.PENDING,
            Invitation.expires_at > func.now(), Tenant.id == Invitation.tenant_id,
            Tenant.is_usable))))
    finally:
        set_context(db.session, verified_email=None)


def resolve(issuer: str, claims: dict, *, allow_signup: bool) -> Outcome:
    """The account this provider identity signs in to, linking or creating it when the rules allow."""
    subject = str(claims.get("sub") or "")
    email = normalise_email(str(claims.get("email") or ""))
    if not subject:
        return _refuse("oidc_no_subject", email, "The single sign-on provider did not say who you are. Try again.")
    user = db.session.scalar(select(User).where(User.oidc_issuer == issuer, User.oidc_subject == subject))
    if user is not None:
        if not user.is_active:
            return _unavailable(user, user.email)
        return Outcome(user, "subject", user.email)

    if not email or not _plausible(email):
        return _refuse("oidc_no_email", email, "Your single sign-on account has no usable email address. "
                       "Ask your identity provider's administrator to add one.")
    if not _verified(claims):
        # Said before looking the address up: an unverified claim learns nothing about accounts.
        return _refuse("oidc_email_unverified", email, f"Your single sign-on provider has not verified {email}. "
                       "Verify the address there, then try again.")

    user = find_user_by_email(email)
    if user is not None:
        if not user.is_active:
            return _unavailable(user, email)
        if user.oidc_issuer == issuer and user.oidc_subject and user.oidc_subject != subject:
            return _refuse("oidc_linked_elsewhere", email, f"{email} is already linked to another single sign-on "
                           "account. Sign in with that one, or ask an organization admin for help.", user)
        # Unlinked, or linked to a provider that is no longer configured.
        user.oidc_issuer, user.oidc_subject = issuer, subject
        events.security("sso.link", user, issuer=issuer)
        if user.email_verified_at is None:
            user.email_verified_at = func.now()  # the provider has just verified it
        db.session.flush()
        return Outcome(user, "linked", email)

    if not (allow_signup or has_pending_invitation(email)):
        return _refuse("oidc_no_account", email,
                       f"No account for {email}. Ask an organization admin for an invitation.")
    user = create_user(email, _name(claims), None, email_verified_at=func.now(), oidc_issuer=issuer,
                       oidc_subject=subject)
    return Outcome(user, "created", email)
