"""Sign-in storms (issue 27): argon2 computations take one of PASSWORD_HASH_CONCURRENCY slots per
process, so sign-ins queue for a slot instead of taking every core from the pages."""
from __future__ import annotations

import threading

from portal.accounts import passwords


def _verify_in_thread(app, password_hash, results):
    def run():
        with app.app_context():
            results.append(passwords.verify_password(password_hash, "a password"))
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_sign_in_waits_while_the_slots_are_taken(app):
    password_hash = passwords.hash_password("a password")  # no app: no gate (scripts, fixtures)
    results = []
    with app.app_context():
        assert app.config["PASSWORD_HASH_CONCURRENCY"] == 1
        with passwords.hashing_slot():  # another sign-in is hashing
            thread = _verify_in_thread(app, password_hash, results)
            thread.join(0.5)
            assert thread.is_alive() and results == []  # queued, not computing
        thread.join(30)
    assert results == [True]


def test_more_slots_let_sign_ins_hash_side_by_side(app):
    password_hash = passwords.hash_password("a password")
    results = []
    app.config["PASSWORD_HASH_CONCURRENCY"] = 2
    try:
        with app.app_context(), passwords.hashing_slot():
            thread = _verify_in_thread(app, password_hash, results)
            thread.join(30)
            assert results == [True]
    finally:
        app.config["PASSWORD_HASH_CONCURRENCY"] = 1
