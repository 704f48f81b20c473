"""Passkeys: registering one on the account, signing in with one (alone, or as the second
factor after a password), confirming a sensitive change with one, renaming and removing.

Built on py_webauthn (`webauthn` 3.x), which checks the signatures, the challenge, the origin
and the relying party. Here: the challenges (stored server-side, single use, five minutes,
found by the value the browser's answer names, and for the account's own ceremonies only
answering for that account), user verification required in every
ceremony (a passkey alone is then two factors: the device, and the PIN or biometric that
unlocks it), the signature counter (a counter that does not move forward is refused and
recorded as a critical security event), and the rule that the last way in stays."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from uuid import UUID

from sqlalchemy import delete, func, insert, or_, select, text, update
from webauthn import (generate_authentication_options, generate_registration_options, verify_authentication_response,
                      verify_registration_response)
from webauthn.helpers import (options_to_json_dict, parse_authentication_credential_json, parse_client_data_json,
                              parse_registration_credential_json)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (AuthenticatorSelectionCriteria, AuthenticatorTransport,
                                      PublicKeyCredentialDescriptor, ResidentKeyRequirement,
                                      UserVerificationRequirement)

from ..accounts.models import User
from ..database.context import user_scope
from ..extensions import db
from ..oneline import control_character
from ..rules import RuleViolation
from ..security import events
from ..security.models import SecurityEvent
from . import relying_party
from .models import Authenticator, WebAuthnChallenge

CHALLENGE_LIFETIME = timedelta(minutes=5)
TIMEOUT_MS = 300_000  # what the browser is told: the same five minutes
MAX_PASSKEYS = 20  # per account: a list people can still read
NAME_MAX = 100
KNOWN_TRANSPORTS = {t.value for t in AuthenticatorTransport}


class PasskeyError(Exception):
    """A ceremony that cannot complete; the message is written for the person, `reason` for the
    sign-in history."""

    def __init__(self, message: str, reason: str = "bad_passkey"):
        super().__init__(message)
        self.message, self.reason = message, reason


@dataclass
class Verified:
    user: User
    authenticator: Authenticator


EXPIRED = "The passkey request expired or was already used. Please try again."
NOT_ACCEPTED = "That passkey was not accepted. Please try again, or use another way to sign in."
UNKNOWN = ("This passkey is not registered here. It may have been removed from your account; "
           "sign in another way and add it again.")


def available() -> bool:
    return relying_party.rp_id() is not None


def _require_rp() -> str:
    rp = relying_party.rp_id()
    if rp is None:
        raise PasskeyError("Passkeys need the portal to be reached by a domain name, not an IP address "
                           "(see WEBAUTHN_RP_ID).", "passkey_unavailable")
    return rp


# Challenges ---------------------------------------------------------------------------------

def _issue(purpose: str, challenge: bytes, user_id: UUID | None) -> None:
    """Store a new challenge (and delete those expired an hour ago). The cookie session is left
    alone on purpose: /login asks for sign-in options as it loads (the autofill), and a response
    that set the cookie could land after the password sign-in's and undo it."""
    db.session.execute(delete(WebAuthnChallenge).where(
        WebAuthnChallenge.expires_at < func.now() - timedelta(hours=1)))
    db.session.add(WebAuthnChallenge(purpose=purpose, challenge=challenge, user_id=user_id,
                                     expires_at=datetime.now(timezone.utc) + CHALLENGE_LIFETIME))
    db.session.flush()


def _take(purpose: str, user_id: UUID | None, answered: bytes) -> bytes:
    """The stored challenge the browser's answer names (`answered`, from its clientDataJSON), for
    this purpose and account, used up now in a transaction of its own, so it stays used however
    the request ends; PasskeyError when there is none (unknown, used, expired, another's)."""
    if not answered or len(answered) > 64:
        raise PasskeyError(EXPIRED, "passkey_expired")
    stmt = (update(WebAuthnChallenge)
            .where(WebAuthnChallenge.challenge == answered, WebAuthnChallenge.purpose == purpose,
                   WebAuthnChallenge.used_at.is_(None), WebAuthnChallenge.expires_at > func.now(),
                   WebAuthnChallenge.user_id.is_(None) if user_id is None else WebAuthnChallenge.user_id == user_id)
            .values(used_at=func.now()).returning(WebAuthnChallenge.challenge))
    with db.engine.begin() as conn:
        if user_id is not None:  # an account's challenge is its own row (RLS): taken as the account
            conn.execute(select(func.set_config("app.user_id", str(user_id), True)))
        row = conn.execute(stmt).first()
    if row is None:
        raise PasskeyError(EXPIRED, "passkey_expired")
    return row.challenge


def _answered(client_data_json: bytes) -> bytes:
    """The challenge a browser's clientDataJSON names (checked again, with the rest, by py_webauthn)."""
    try:
        return parse_client_data_json(bytes(client_data_json)).challenge
    except Exception:  # noqa: BLE001 - malformed JSON or base64 of every kind: not an answer
        return b""


# Registration -------------------------------------------------------------------------------

def passkeys_of(user_id: UUID) -> list[Authenticator]:
    return db.session.scalars(select(Authenticator).where(Authenticator.user_id == user_id)
                              .order_by(Authenticator.created_at, Authenticator.id)).all()


def count(user_id: UUID) -> int:
    return db.session.scalar(select(func.count()).select_from(Authenticator)
                             .where(Authenticator.user_id == user_id)) or 0


def _descriptors(authenticators: list[Authenticator]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(
        id=a.credential_id, transports=[AuthenticatorTransport(t) for t in a.transports if t in KNOWN_TRANSPORTS])
        for a in authenticators]


def registration_options(user: User) -> dict:
    """Options for navigator.credentials.create(): a discoverable credential (resident key), user
    verification required, none of the account's passkeys again."""
    rp = _require_rp()
    existing = passkeys_of(user.id)
    if len(existing) >= MAX_PASSKEYS:
        raise RuleViolation(f"An account holds at most {MAX_PASSKEYS} passkeys: remove one you no longer use first.")
    options = generate_registration_options(
        rp_id=rp, rp_name=relying_party.RP_NAME, user_id=user.id.bytes, user_name=user.email,
        user_display_name=user.display_name, timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, require_resident_key=True,
            user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=_descriptors(existing))
    _issue("register", options.challenge, user.id)
    return options_to_json_dict(options)


def clean_name(name: str | None, fallback: str) -> str:
    name = (name or "").strip()
    if not name:
        return fallback[:NAME_MAX]
    if len(name) > NAME_MAX:
        raise RuleViolation(f"A passkey's name has at most {NAME_MAX} characters.", field="name")
    if control_character(name) is not None:
        raise RuleViolation("Write the name on one line: line breaks, tabs and other control characters "
                            "are not allowed.", field="name")
    return name


def register(user: User, credential: str, name: str | None, *, fallback_name: str = "Passkey") -> Authenticator:
    """Verify the browser's answer to registration_options and keep the passkey."""
    rp = _require_rp()
    name = clean_name(name, fallback_name)
    try:
        parsed = parse_registration_credential_json(credential or "")
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise PasskeyError("The browser's answer could not be read, so no passkey was added. "
                           "Please try again.") from exc
    challenge = _take("register", user.id, _answered(parsed.response.client_data_json))
    try:
        verified = verify_registration_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp,
            expected_origin=relying_party.origins(), require_user_verification=True)
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise PasskeyError("The browser's answer could not be verified, so no passkey was added. "
                           "Please try again.") from exc
    if owner_of(verified.credential_id) is not None:  # on this account or any other
        raise PasskeyError("That passkey is already registered.")
    transports = [t.value for t in (parsed.response.transports or []) if t.value in KNOWN_TRANSPORTS]
    authenticator = Authenticator(
        user_id=user.id, credential_id=verified.credential_id, credential_public_key=verified.credential_public_key,
        counter=verified.sign_count, transports=transports, aaguid=str(verified.aaguid),
        device_type=verified.credential_device_type.value, backed_up=verified.credential_backed_up,
        friendly_name=name)
    db.session.add(authenticator)
    db.session.flush()
    events.security("passkey.add", user, passkey=name, passkey_id=str(authenticator.id),
                    device_type=authenticator.device_type)
    return authenticator


# Assertions: sign-in, second factor, re-authentication --------------------------------------

def authentication_options(purpose: str, user: User | None = None) -> dict:
    """Options for navigator.credentials.get(). Without a user (sign-in) the browser offers the
    discoverable passkeys it holds for this relying party; with one, only theirs."""
    rp = _require_rp()
    allowed = _descriptors(passkeys_of(user.id)) if user is not None else []
    if user is not None and not allowed:
        raise PasskeyError("Your account has no passkey yet.", "passkey_none")
    options = generate_authentication_options(rp_id=rp, timeout=TIMEOUT_MS, allow_credentials=allowed,
                                              user_verification=UserVerificationRequirement.REQUIRED)
    _issue(purpose, options.challenge, user.id if user is not None else None)
    return options_to_json_dict(options)


def _critical(kind: str, user: User, **details) -> None:
    """A security event that must outlive the refused request (its own transaction)."""
    with db.engine.begin() as conn:
        conn.execute(insert(SecurityEvent).values(**events.event_row(kind, user.id, user.email, details)))


def owner_of(credential_id: bytes) -> UUID | None:
    """The account a credential id is registered to, whoever asks (portal_passkey_owner: the one
    read of passkeys across accounts, for a sign-in that names no account yet)."""
    return db.session.scalar(text("SELECT portal_passkey_owner(:c)"), {"c": credential_id})


def verify_assertion(purpose: str, credential: str, user: User | None = None) -> Verified:
    """Check the browser's answer to authentication_options(purpose, user): the challenge (used
    up whatever happens next), the passkey (registered, and the user's when one is expected),
    the signature, origin, relying party and user verification, then the counter. The passkey
    is read and updated as its account (RLS); a sign-in learns which account from the
    credential id first."""
    rp = _require_rp()
    try:
        parsed = parse_authentication_credential_json(credential or "")
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise PasskeyError(NOT_ACCEPTED) from exc
    challenge = _take(purpose, user.id if user is not None else None, _answered(parsed.response.client_data_json))
    owner_id = user.id if user is not None else owner_of(parsed.raw_id)
    if owner_id is None:
        raise PasskeyError(UNKNOWN, "passkey_unknown")
    with user_scope(db.session, owner_id):
        return _verify(parsed, challenge, rp, user)


def _verify(parsed, challenge: bytes, rp: str, user: User | None) -> Verified:
    authenticator = db.session.scalar(select(Authenticator).where(Authenticator.credential_id == parsed.raw_id))
    if authenticator is None or (user is not None and authenticator.user_id != user.id):
        raise PasskeyError(UNKNOWN, "passkey_unknown")
    # A discoverable credential names its account (user.id, given at registration): it must agree.
    if parsed.response.user_handle and parsed.response.user_handle != authenticator.user_id.bytes:
        raise PasskeyError(NOT_ACCEPTED)
    owner = user or db.session.get(User, authenticator.user_id)
    try:
        # The counter is compared below, after the signature: only a genuinely signed answer
        # with a stale counter is the sign of a copied authenticator worth a critical event.
        verified = verify_authentication_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp,
            expected_origin=relying_party.origins(), credential_public_key=authenticator.credential_public_key,
            credential_current_sign_count=0, require_user_verification=True)
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise PasskeyError(NOT_ACCEPTED) from exc
    new, stored = verified.new_sign_count, authenticator.counter
    if (new > 0 or stored > 0) and new <= stored:
        _critical("passkey.counter_regressed", owner, passkey=authenticator.friendly_name,
                  passkey_id=str(authenticator.id), stored_counter=stored, presented_counter=new)
        raise PasskeyError("That passkey was refused: its signature counter went backwards, which can mean it "
                           "was copied. Use another passkey or your password, and remove this one if you "
                           "do not recognise this.", "passkey_counter")
    # One guarded statement: of two answers racing with the same counter, one wins.
    won = db.session.execute(update(Authenticator).where(
        Authenticator.id == authenticator.id, or_(Authenticator.counter < new, Authenticator.counter == 0))
        .values(counter=new, last_used_at=func.now(), backed_up=verified.credential_backed_up,
                device_type=verified.credential_device_type.value).returning(Authenticator.id)).scalar()
    if won is None:
        raise PasskeyError(NOT_ACCEPTED)
    db.session.refresh(authenticator)
    return Verified(owner, authenticator)


# Managing -----------------------------------------------------------------------------------

def _owned(user: User, passkey_id: UUID) -> Authenticator:
    authenticator = db.session.scalar(select(Authenticator).where(
        Authenticator.id == passkey_id, Authenticator.user_id == user.id).with_for_update())
    if authenticator is None:
        raise RuleViolation("That passkey is no longer on your account.")
    return authenticator


def rename(user: User, passkey_id: UUID, name: str) -> Authenticator:
    authenticator = _owned(user, passkey_id)
    new = clean_name(name, "")
    if not new:
        raise RuleViolation("Give the passkey a name.", field="name")
    old, authenticator.friendly_name = authenticator.friendly_name, new
    if old != new:
        events.security("passkey.rename", user, passkey_id=str(authenticator.id), old_name=old, passkey=new)
    return authenticator


def other_ways_in(user: User) -> bool:
    """Whether the account can sign in without passkeys: a password, or single sign-on."""
    return bool(user.password_hash) or bool(user.oidc_subject)


def can_remove(user: User, passkeys: int) -> bool:
    return passkeys > 1 or other_ways_in(user)


def remove(user: User, passkey_id: UUID) -> str:
    # The user's row first: two removals racing for an account's last two passkeys serialise here.
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())
    authenticator = _owned(user, passkey_id)
    if not can_remove(user, count(user.id)):
        raise RuleViolation("This passkey is the only way into your account, so it stays. Add another passkey "
                            "first, or set a password.")
    name = authenticator.friendly_name
    db.session.delete(authenticator)
    events.security("passkey.remove", user, passkey_id=str(passkey_id), passkey=name)
    return name


def forget(user_id: UUID) -> int:
    """Every passkey and pending challenge of an account that is being deleted (no last-way-in
    rule: nobody signs in to it again). Returns how many passkeys went. As the account (RLS)."""
    with user_scope(db.session, user_id):
        db.session.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.user_id == user_id))
        return db.session.execute(delete(Authenticator).where(Authenticator.user_id == user_id)).rowcount
