"""Passkeys without a browser: a software authenticator (an ES256 key from `cryptography`, its
answers built byte for byte as WebAuthn specifies) talks to the portal's endpoints, whose
checks are py_webauthn's plus the portal's (challenges, counters, the last way in).
The same flows in Chromium's virtual authenticator: tests/test_browser_passkeys.py."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field

import cbor2
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import PASSWORD, csrf_from, csrf_token, login
from portal.accounts.models import User
from portal.database.context import acting_as, user_scope
from portal.extensions import db
from portal.passkeys.models import Authenticator, WebAuthnChallenge
from portal.security.models import LoginEvent, SecurityEvent

ORIGIN = "http://localhost"  # the test client's host; BASE_URL in testing
RP_ID = "localhost"
UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftKey:
    """One passkey held by a software authenticator."""
    user_handle: bytes = b""
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    counter: int = 0

    def cose(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()

    def create(self, options: dict, *, origin: str = ORIGIN, flags: int = UP | UV | BE | BS) -> dict:
        self.user_handle = unb64(options["user"]["id"])
        rp_hash = hashlib.sha256(options["rp"]["id"].encode()).digest()
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + self.cose()
        auth_data = rp_hash + bytes([flags | AT]) + struct.pack(">I", self.counter) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id), "type": "public-key",
                "response": {"clientDataJSON": b64(client_data), "attestationObject": b64(attestation),
                             "transports": ["internal"]},
                "clientExtensionResults": {}, "authenticatorAttachment": "platform"}

    def get(self, options: dict, *, origin: str = ORIGIN, counter: int | None = None, flags: int = UP | UV | BE | BS,
            rp_id: str | None = None) -> dict:
        self.counter = self.counter + 1 if counter is None else counter
        rp_hash = hashlib.sha256((rp_id or options["rpId"]).encode()).digest()
        auth_data = rp_hash + bytes([flags]) + struct.pack(">I", self.counter)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id), "type": "public-key",
                "response": {"clientDataJSON": b64(client_data), "authenticatorData": b64(auth_data),
                             "signature": b64(signature), "userHandle": b64(self.user_handle)},
                "clientExtensionResults": {}, "authenticatorAttachment": "platform"}


def options(client, url: str, token: str) -> dict:
    response = client.post(url, headers={"X-CSRFToken": token, "Accept": "application/json"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["publicKey"]


def add_passkey(client, key: SoftKey, name: str = "Laptop", **create) -> object:
    token = csrf_token(client)
    made = key.create(options(client, "/account/passkeys/options", token), **create)
    return client.post("/account/passkeys", data={"csrf_token": token, "name": name, "credential": json.dumps(made)})


def login_page_token(client) -> str:
    return csrf_from(client.get("/login").get_data(as_text=True))


def passkey_signin(client, key: SoftKey, **get):
    token = login_page_token(client)
    answer = key.get(options(client, "/login/passkey/options", token), **get)
    return client.post("/login/passkey", data={"csrf_token": token, "credential": json.dumps(answer)}), answer, token


def flashed(client) -> str:
    return client.get("/login").get_data(as_text=True)


def signed_in(client) -> bool:
    return client.get("/account/profile").status_code == 200


@contextmanager
def as_person(app, user_id, *, request: bool = False):
    """An app context whose transactions read and write the person's own rows (RLS user_own)."""
    with app.test_request_context() if request else app.app_context(), user_scope(db.session, user_id):
        yield


def events_of(app, user_id, kind: str) -> list[SecurityEvent]:
    """The user's events as the serving role reads them (RLS: their own, with app.user_id)."""
    from portal.database.context import set_context
    with app.app_context():
        set_context(db.session, user_id=user_id)
        return db.session.scalars(sa.select(SecurityEvent).where(
            SecurityEvent.user_id == user_id, SecurityEvent.event == kind)).all()


@pytest.fixture
def enrolled(app, factory):
    """A user with one passkey (added through the account page), signed out again."""
    user = factory.user(name="Pat Passkey")
    factory.tenant(members={"member": user}, sites=0)
    client = app.test_client()
    login(client, user.email)
    key = SoftKey()
    assert add_passkey(client, key).status_code == 303
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    return user, key, app.test_client()


def test_register_then_sign_in_with_the_passkey_alone(app, enrolled):
    user, key, client = enrolled
    with as_person(app, user.id):
        row = db.session.scalar(sa.select(Authenticator).where(Authenticator.user_id == user.id))
        assert (row.friendly_name, row.device_type, row.backed_up, row.transports) == \
            ("Laptop", "multi_device", True, ["internal"])
        assert row.last_used_at is None
    response, _, _ = passkey_signin(client, key)
    assert response.status_code == 303 and response.location.endswith("/t/" + response.location.split("/t/")[1])
    assert signed_in(client)
    with as_person(app, user.id):
        assert db.session.scalar(sa.select(Authenticator.counter).where(Authenticator.user_id == user.id)) == 1
        event = db.session.scalars(sa.select(LoginEvent).where(LoginEvent.user_id == user.id)
                                   .order_by(LoginEvent.created_at.desc())).first()
        assert (event.success, event.method) == (True, "passkey")
    page = client.get("/account/security").get_data(as_text=True)
    assert "Laptop" in page and "Synced" in page and "never" not in page.split("Laptop")[1].split("</tr>")[0]
    assert [e.details["passkey"] for e in events_of(app, user.id, "passkey.add")] == ["Laptop"]


def test_a_wrong_origin_is_refused(app, enrolled):
    user, key, client = enrolled
    response, _, _ = passkey_signin(client, key, origin="https://login.evil.example")
    assert response.status_code == 303 and response.location.startswith("/login")
    assert "That passkey was not accepted" in flashed(client)
    assert not signed_in(client)


def test_a_wrong_relying_party_is_refused(app, enrolled):
    _, key, client = enrolled
    passkey_signin(client, key, rp_id="evil.example")
    assert not signed_in(client)


def test_a_replayed_assertion_is_refused(app, enrolled):
    """The challenge is single use: the same answer posted twice signs in once; and an old
    answer does not fit a new challenge."""
    _, key, client = enrolled
    response, answer, token = passkey_signin(client, key)
    assert response.status_code == 303 and signed_in(client)
    attacker = app.test_client()
    token = login_page_token(attacker)
    options(attacker, "/login/passkey/options", token)  # a fresh challenge of its own
    again = attacker.post("/login/passkey", data={"csrf_token": token, "credential": json.dumps(answer)})
    assert again.status_code == 303 and not signed_in(attacker)
    # The very same browser replaying its own answer: the challenge is gone.
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    token = login_page_token(client)
    client.post("/login/passkey", data={"csrf_token": token, "credential": json.dumps(answer)})
    assert not signed_in(client)
    assert "expired or was already used" in flashed(client)


def test_a_counter_going_backwards_is_refused_and_recorded(app, enrolled):
    user, key, client = enrolled
    assert passkey_signin(client, key, counter=5)[0].status_code == 303
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    passkey_signin(client, key, counter=3)  # a copy of the key, used less often
    assert not signed_in(client)
    assert "counter went backwards" in flashed(client)
    [event] = events_of(app, user.id, "passkey.counter_regressed")
    assert event.severity == "critical"
    assert (event.details["stored_counter"], event.details["presented_counter"]) == (5, 3)
    with as_person(app, user.id):
        assert db.session.scalar(sa.select(Authenticator.counter).where(Authenticator.user_id == user.id)) == 5
    # The same counter again is no better; a higher one works.
    passkey_signin(client, key, counter=5)
    assert not signed_in(client)
    assert passkey_signin(client, key, counter=6)[0].status_code == 303 and signed_in(client)


def test_an_expired_challenge_is_refused(app, enrolled):
    _, key, client = enrolled
    token = login_page_token(client)
    answer = key.get(options(client, "/login/passkey/options", token))
    with app.app_context():
        db.session.execute(sa.update(WebAuthnChallenge).where(WebAuthnChallenge.used_at.is_(None))
                           .values(expires_at=sa.func.now() - sa.text("interval '1 second'")))
        db.session.commit()
    client.post("/login/passkey", data={"csrf_token": token, "credential": json.dumps(answer)})
    assert not signed_in(client)
    assert "expired or was already used" in flashed(client)


def test_user_verification_is_required(app, enrolled):
    _, key, client = enrolled
    passkey_signin(client, key, flags=UP)
    assert not signed_in(client)


def test_an_unknown_passkey_and_garbage_are_refused_without_error(app, enrolled):
    _, key, client = enrolled
    stranger = SoftKey(user_handle=key.user_handle)
    response, _, token = passkey_signin(client, stranger)
    assert response.status_code == 303 and "not registered here" in flashed(client)
    for junk in ("", "null", "[]", '{"id": 1}', "x" * 1000, json.dumps({"id": "a", "rawId": "a", "response": {}})):
        options(client, "/login/passkey/options", token)
        response = client.post("/login/passkey", data={"csrf_token": token, "credential": junk})
        assert response.status_code == 303, junk
    assert not signed_in(client)


def test_registration_checks(app, factory):
    user = factory.user()
    client = app.test_client()
    login(client, user.email)
    token = csrf_token(client)

    def said() -> str:
        return client.get("/account/security").get_data(as_text=True)
    # A wrong origin, and no user verification: nothing is added.
    add_passkey(client, SoftKey(), origin="https://evil.example")
    assert "could not be verified" in said()
    add_passkey(client, SoftKey(), flags=UP)
    assert "could not be verified" in said()
    # Left unnamed, it takes the browser's name; the same passkey twice is refused.
    key = SoftKey()
    add_passkey(client, key, name="")
    assert "“Unknown browser” added" in said()
    add_passkey(client, key, name="Again")
    assert "already registered" in said()
    add_passkey(client, SoftKey(), name="two\nlines")
    assert "on one line" in said()
    add_passkey(client, SoftKey(), name="x" * 101)
    assert "at most 100 characters" in said()
    # No answer at all (no JavaScript): said so.
    options(client, "/account/passkeys/options", token)
    client.post("/account/passkeys", data={"csrf_token": token, "name": "No JS", "credential": ""})
    assert "Your browser sent no passkey" in said()
    with as_person(app, user.id):
        names = db.session.scalars(sa.select(Authenticator.friendly_name).where(Authenticator.user_id == user.id)).all()
    assert names == ["Unknown browser"]


def test_adding_needs_a_recent_confirmation(app, factory):
    user = factory.user()
    client = app.test_client()
    login(client, user.email)
    with as_person(app, user.id):
        db.session.execute(sa.text("UPDATE user_sessions SET reauth_at = now() - interval '1 hour' "
                                   "WHERE user_id = :u"), {"u": user.id})
        db.session.commit()
    token = csrf_token(client)
    response = client.post("/account/passkeys/options", headers={"X-CSRFToken": token})
    assert response.status_code == 401 and "/account/confirm" in response.get_json()["redirect"]
    client.post("/account/confirm?next=/account/security", data={"csrf_token": token, "password": PASSWORD})
    assert client.post("/account/passkeys/options", headers={"X-CSRFToken": token}).status_code == 200


def test_rename_and_remove_but_never_the_last_way_in(app, factory):
    user = factory.user()
    client = app.test_client()
    login(client, user.email)
    first, second = SoftKey(), SoftKey()
    add_passkey(client, first, name="Phone")
    add_passkey(client, second, name="Key")
    token = csrf_token(client)
    with as_person(app, user.id):
        ids = dict(db.session.execute(sa.select(Authenticator.friendly_name, Authenticator.id)
                                      .where(Authenticator.user_id == user.id)).all())
        # Without a password (an account made by single sign-on, say) the passkeys are the way in.
        db.session.execute(sa.update(User).where(User.id == user.id).values(password_hash=None))
        db.session.commit()
    assert client.post(f"/account/passkeys/{ids['Phone']}/rename",
                       data={"csrf_token": token, "name": "Pixel"}).status_code == 303
    assert client.post(f"/account/passkeys/{ids['Key']}/remove", data={"csrf_token": token}).status_code == 303
    client.post(f"/account/passkeys/{ids['Phone']}/remove", data={"csrf_token": token})
    page = client.get("/account/security").get_data(as_text=True)
    assert "only way into your account" in page and "Pixel" in page
    assert "Your only way in" in page
    # Someone else's passkey is not found.
    other = factory.user()
    other_client = app.test_client()
    login(other_client, other.email)
    other_client.post(f"/account/passkeys/{ids['Phone']}/remove", data={"csrf_token": csrf_token(other_client)})
    with as_person(app, user.id):
        left = db.session.scalars(sa.select(Authenticator.friendly_name).where(Authenticator.user_id == user.id)).all()
    assert left == ["Pixel"]
    kinds = [e.event for e in sorted(events_of(app, user.id, "passkey.rename") + events_of(app, user.id, "passkey.remove"),
                                     key=lambda e: e.created_at)]
    assert kinds == ["passkey.rename", "passkey.remove"]


def test_a_passkey_as_the_second_factor_after_the_password(app, factory):
    import pyotp
    from portal.security import mfa
    user = factory.user()
    client = app.test_client()
    login(client, user.email)
    key = SoftKey()
    add_passkey(client, key, name="Phone")
    with as_person(app, user.id, request=True):  # as the account page does, for the signed-in person
        row = db.session.get(User, user.id)
        mfa.enable(row, pyotp.random_base32())
        db.session.commit()
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    token = login_page_token(client)
    response = client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token})
    assert response.location.endswith("/login/verify")
    page = client.get("/login/verify").get_data(as_text=True)
    assert "Use a passkey" in page
    token = csrf_from(page)
    answer = key.get(options(client, "/login/verify/passkey/options", token))
    assert answer  # allowCredentials named the user's passkey
    response = client.post("/login/verify/passkey", data={"csrf_token": token, "credential": json.dumps(answer)})
    assert response.status_code == 303 and signed_in(client)
    with as_person(app, user.id):
        event = db.session.scalars(sa.select(LoginEvent).where(LoginEvent.user_id == user.id, LoginEvent.success)
                                   .order_by(LoginEvent.created_at.desc())).first()
    assert event.method == "password+passkey"
    # The passkey alone skips the code step, although the account has an authenticator app.
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    response, _, _ = passkey_signin(client, key)
    assert "/login/verify" not in response.location and signed_in(client)


def test_a_passkey_sign_in_satisfies_a_tenant_two_factor_policy(app, factory):
    from portal.tenants.models import Tenant
    user = factory.user()
    tenant = factory.tenant(members={"member": user}, sites=0)
    with app.app_context():
        with acting_as(db.session, "test:setup"):  # set up as an owner's change would be
            row = db.session.get(Tenant, tenant["id"])
            row.settings = {**(row.settings or {}), "security": {"require_mfa": True}}
        db.session.commit()
    client = app.test_client()
    login(client, user.email)
    key = SoftKey()
    add_passkey(client, key)
    # Signed in with the password alone: sent to set up two-factor.
    assert "/account/two-factor" in client.get(f"/t/{tenant['slug']}/").location
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    passkey_signin(client, key)
    assert client.get(f"/t/{tenant['slug']}/").status_code == 200


def test_confirming_a_change_with_a_passkey(app, factory):
    user = factory.user()
    client = app.test_client()
    login(client, user.email)
    key = SoftKey()
    add_passkey(client, key)
    with as_person(app, user.id):
        db.session.execute(sa.text("UPDATE user_sessions SET reauth_at = now() - interval '1 hour' "
                                   "WHERE user_id = :u"), {"u": user.id})
        db.session.commit()
    page = client.get("/account/confirm?next=/account/security").get_data(as_text=True)
    assert "Confirm with a passkey" in page
    token = csrf_from(page)
    answer = key.get(options(client, "/account/passkeys/confirm/options", token))
    response = client.post("/account/passkeys/confirm?next=/account/security",
                           data={"csrf_token": token, "credential": json.dumps(answer)})
    assert response.location == "/account/security"
    assert client.post("/account/passkeys/options", headers={"X-CSRFToken": token}).status_code == 200


def test_relying_party_defaults(app):
    from portal.passkeys import relying_party
    cases = [({"BASE_URL": "https://portal.example.com"}, "portal.example.com"),
             ({"BASE_URL": "http://127.0.0.1:5000"}, "localhost"),
             ({"BASE_URL": "http://10.0.0.5"}, None),
             ({"BASE_URL": "http://10.0.0.5", "WEBAUTHN_RP_ID": "example.org"}, "example.org")]
    saved = {k: app.config.get(k) for k in ("BASE_URL", "WEBAUTHN_RP_ID", "WEBAUTHN_ORIGINS", "PORTAL_ENV")}
    try:
        for config, expected in cases:
            app.config.update({"WEBAUTHN_RP_ID": "", **config})
            with app.test_request_context():
                assert relying_party.rp_id() == expected, config
        app.config.update(BASE_URL="http://127.0.0.1:5000", WEBAUTHN_RP_ID="")
        with app.test_request_context(base_url="http://localhost:8123"):
            assert relying_party.origins() == ["http://127.0.0.1:5000", "http://localhost:8123"]
        with app.test_request_context(base_url="http://evil.example:8123"):
            assert relying_party.origins() == ["http://127.0.0.1:5000"]
        app.config.update(PORTAL_ENV="production", BASE_URL="https://portal.example.com")
        with app.test_request_context(base_url="https://portal.example.com:8443"):
            assert relying_party.origins() == ["https://portal.example.com"]
        app.config.update(WEBAUTHN_ORIGINS="https://a.example.com, https://b.example.com/")
        with app.test_request_context():
            assert relying_party.origins() == ["https://a.example.com", "https://b.example.com"]
    finally:
        app.config.update(saved)


def test_forget_takes_every_passkey_of_a_deleted_account(app, enrolled):
    """For the account's deletion (portal/accounts): no last-way-in rule there."""
    from portal.passkeys import services
    user, key, client = enrolled
    token = login_page_token(client)
    options(client, "/login/passkey/options", token)
    with app.app_context():
        assert services.forget(user.id) == 1
        db.session.commit()
    with as_person(app, user.id):
        assert services.count(user.id) == 0
    passkey_signin(client, key)
    assert not signed_in(client)


def test_asking_for_sign_in_options_leaves_the_cookie_alone(app, enrolled):
    """/login asks for options as it loads (the autofill): a cookie set by that answer could
    arrive after the password sign-in's and sign the person out again."""
    _, _, client = enrolled
    token = login_page_token(client)
    response = client.post("/login/passkey/options", headers={"X-CSRFToken": token})
    assert response.status_code == 200 and "Set-Cookie" not in response.headers


def test_a_challenge_answers_only_for_its_purpose_and_account(app, enrolled, factory):
    user, key, client = enrolled
    # A challenge made for confirming a change (bound to the account) does not sign anyone in.
    login(client, user.email)
    token = csrf_token(client)
    answer = key.get(options(client, "/account/passkeys/confirm/options", token))
    client.post("/logout", data={"csrf_token": token})
    token = login_page_token(client)
    client.post("/login/passkey", data={"csrf_token": token, "credential": json.dumps(answer)})
    assert not signed_in(client) and "expired or was already used" in flashed(client)
    # Another account's confirmation challenge does not confirm this one's change.
    other = factory.user()
    other_client = app.test_client()
    login(other_client, other.email)
    add_passkey(other_client, SoftKey())
    login(client, user.email)
    token = csrf_token(client)
    other_token = csrf_token(other_client)
    foreign = options(other_client, "/account/passkeys/confirm/options", other_token)
    answer = key.get({**foreign, "rpId": RP_ID})
    response = client.post("/account/passkeys/confirm?next=/account/security",
                           data={"csrf_token": token, "credential": json.dumps(answer)})
    assert "/account/confirm" in response.location
