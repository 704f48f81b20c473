"""argon2id password hashing (argon2-cffi's defaults are argon2id, RFC 9106 low-memory profile).

Hashing and verifying hold a slot of a per-process semaphore sized by PASSWORD_HASH_CONCURRENCY
(default 1): each one takes a core for tens of milliseconds and 64 MiB, so a storm of sign-ins
waits in line for a slot instead of taking every core from the pages being served (issue 27).
A node's bound is its web processes times this. Outside an application (scripts, tests' fixtures)
there is no gate."""
from __future__ import annotations

import threading
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_app_context

_hasher = PasswordHasher()
# Verified against when the account does not exist, so both paths cost the same.
_DUMMY_HASH = _hasher.hash("portal-timing-equaliser")

_gate_lock = threading.Lock()
_gate: tuple[int, threading.BoundedSemaphore] | None = None


def _semaphore() -> threading.BoundedSemaphore | None:
    global _gate
    if not has_app_context():
        return None
    size = max(1, int(current_app.config.get("PASSWORD_HASH_CONCURRENCY") or 1))
    with _gate_lock:
        if _gate is None or _gate[0] != size:  # one app per process in production; tests vary it
            _gate = (size, threading.BoundedSemaphore(size))
        return _gate[1]


@contextmanager
def hashing_slot():
    """One of the process's PASSWORD_HASH_CONCURRENCY slots for an argon2 computation."""
    semaphore = _semaphore()
    if semaphore is None:
        yield
        return
    with semaphore:
        yield


def hash_password(password: str) -> str:
    with hashing_slot():
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        with hashing_slot():
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
