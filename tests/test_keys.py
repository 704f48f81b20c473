"""The keyring (issue 23): sealing with per-tenant data keys wrapped by master keys, its rotation, the
installation's secrets off SECRET_KEY, and crypto-shredding on purge (against a restored backup)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from portal import keys
from portal.extensions import db
from portal.database.context import acting_as, tenant_scope
from portal.keys import cipher


def seal_for(tenant_id, row_id, value=b"s3cret", table="integrations", column="credentials"):
    return keys.seal(value, tenant_id=tenant_id, table=table, column=column, row_id=row_id)


def test_sealed_value_reads_back_only_where_it_was_stored(app, factory):
    one, other = factory.tenant(sites=0, devices=0), factory.tenant(sites=0, devices=0)
    t1, t2 = one["id"], other["id"]
    with app.app_context():
        sealed = seal_for(t1, "row-1")
        db.session.commit()
        assert b"s3cret" not in sealed and cipher.version_of(sealed) == 1
        assert keys.unseal(sealed, tenant_id=t1, table="integrations", column="credentials", row_id="row-1") == b"s3cret"
        # Copied to another row, column, table or tenant: refused.
        for moved in ({"tenant_id": t1, "table": "integrations", "column": "credentials", "row_id": "row-2"},
                      {"tenant_id": t1, "table": "integrations", "column": "config", "row_id": "row-1"},
                      {"tenant_id": t1, "table": "webhooks", "column": "credentials", "row_id": "row-1"},
                      {"tenant_id": t2, "table": "integrations", "column": "credentials", "row_id": "row-1"},
                      {"tenant_id": None, "table": "integrations", "column": "credentials", "row_id": "row-1"}):
            with pytest.raises(keys.Unreadable):
                keys.unseal(sealed, **moved)
        # Altered anywhere (header, nonce, body, tag): refused.
        for position in (1, 4, 7, len(sealed) - 20, len(sealed) - 1):
            tampered = bytearray(sealed)
            tampered[position] ^= 1
            with pytest.raises(keys.Unreadable):
                keys.unseal(bytes(tampered), tenant_id=t1, table="integrations", column="credentials", row_id="row-1")
        with pytest.raises(keys.Unreadable):
            keys.unseal(b"gAAAAAB-a-fernet-token-from-before-the-keyring", tenant_id=t1, table="integrations",
                        column="credentials", row_id="row-1")
        assert issubclass(keys.Unreadable, ValueError)


def test_data_keys_are_stored_wrapped_under_rls(app, factory, db_urls):
    tenant = factory.tenant(sites=0, devices=0)
    with app.app_context():
        kid = keys.master_keys()[0][0]
        # The serving role outside the tenant's scope sees no key row.
        assert db.session.execute(text("SELECT count(*) FROM tenant_keys WHERE tenant_id = :t"),
                                  {"t": tenant["id"]}).scalar() == 0
        db.session.rollback()
    import sqlalchemy as sa
    engine = sa.create_engine(db_urls["owner"], poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT version, wrapped_key, master_key_id FROM tenant_keys WHERE tenant_id = :t"),
                           {"t": tenant["id"]}).one()
    engine.dispose()
    assert row.version == 1 and row.master_key_id == kid and len(row.wrapped_key) == 12 + 32 + 16


def test_master_keys_are_checked_at_start(db_urls):
    from conftest import make_app
    from portal.config import ConfigError
    with pytest.raises(ConfigError, match="not 32"):
        make_app(db_urls, PORTAL_MASTER_KEYS="c2hvcnQ=")
    with pytest.raises(ConfigError, match="same key twice"):
        make_app(db_urls, PORTAL_MASTER_KEYS="A" * 43 + "=," + "A" * 43 + "=")


def test_rotating_secret_key_keeps_two_factor_and_queued_mail(db_urls, app, factory):
    """TOTP secrets, backup codes and queued email bodies are sealed by the keyring: a new SECRET_KEY
    on the same database ends sessions, nothing else."""
    from conftest import PASSWORD, login, make_app
    from mailbox import SmtpServer
    from test_security import attempt, enrol, second_factor, sql

    from portal.accounts.models import User
    from portal.mail import outbox

    person = factory.user(name="Rotating Ruth")
    client = app.test_client()
    login(client, person.email)
    secret, codes = enrol(client)
    with app.test_request_context():
        user = db.session.get(User, person.id)
        message_id = outbox.enqueue("reset_password", person.email, "Queued before the rotation", "reset_password",
                                    user=user, link="https://portal.example.com/reset/abc").id
        db.session.commit()

    sql(app, "UPDATE users SET totp_last_step = 0 WHERE id = :i", i=person.id)  # the enrolment's code is spent
    smtp = SmtpServer().start()
    try:
        rotated = make_app(db_urls, SECRET_KEY="rotated-" + "y" * 32, SMTP_URL=smtp.url)
        fresh = rotated.test_client()
        assert fresh.get("/account/profile").status_code == 302
        assert attempt(fresh, person.email, PASSWORD).headers["Location"] == "/login/verify"
        import pyotp
        assert second_factor(fresh, pyotp.TOTP(secret).now()).status_code == 303
        assert fresh.get("/account/profile").status_code == 200
        other = rotated.test_client()
        attempt(other, person.email, PASSWORD)
        assert second_factor(other, codes[1]).status_code == 303  # a backup code, too
        with rotated.app_context():
            assert outbox.deliver_one(message_id)[0] == "sent"
            db.session.commit()
        [mail] = smtp.inbox.wait_for(1, person.email)
        assert mail["Subject"] == "Queued before the rotation"
        assert "https://portal.example.com/reset/abc" in mail.get_body(preferencelist=("plain",)).get_content()
    finally:
        smtp.stop()


def test_migration_reseals_what_secret_key_protected(db_urls):
    """Rows written before the keyring (Fernet under SECRET_KEY, backup codes hashed with a key derived
    from it) read the same after migration 0019, and no longer depend on SECRET_KEY."""
    import base64
    import hashlib
    import hmac
    import os

    import pyotp
    import sqlalchemy as sa
    from conftest import drop_database, make_app
    from cryptography.fernet import Fernet
    from flask_migrate import upgrade

    from portal.accounts.models import User
    from portal.database.provision import provision, url_for_role
    from portal.mail import outbox
    from portal.mail.models import OutboxMessage
    from portal.security import mfa

    scratch = f"portal_keys_{os.getpid()}"
    provision(db_urls["admin"], scratch, "portal_test_owner", "portal_test_app", fresh=True)
    urls = {**db_urls, "app": url_for_role(db_urls["admin"], "portal_test_app", scratch),
            "owner": url_for_role(db_urls["admin"], "portal_test_owner", scratch)}
    old_secret = "before-" + "z" * 32

    def derived(purpose: str) -> bytes:
        return hashlib.sha256(f"portal-{purpose}".encode() + old_secret.encode()).digest()

    try:
        before = make_app(urls, SECRET_KEY=old_secret, CHECK_RLS=False)
        with before.app_context():
            upgrade(revision="0018")
        totp = pyotp.random_base32()
        engine = sa.create_engine(urls["owner"], poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            user_id = conn.execute(sa.text(
                "INSERT INTO users (email, name, totp_secret, totp_enabled_at) VALUES ('old@example.com', 'Old', :s, now()) "
                "RETURNING id"), {"s": Fernet(base64.urlsafe_b64encode(derived("totp:"))).encrypt(totp.encode())}).scalar()
            conn.execute(sa.text("INSERT INTO mfa_backup_codes (user_id, code_hash) VALUES (:u, :h)"),
                         {"u": user_id, "h": hmac.new(derived("backup-code-hmac:"), b"abc123def456", "sha256").digest()})
            message_id = conn.execute(sa.text(
                "INSERT INTO email_outbox (kind, recipient, subject, payload, message_id) "
                "VALUES ('test', 'old@example.com', 'Old', :p, '<old@example.com>') RETURNING id"),
                {"p": Fernet(base64.urlsafe_b64encode(derived("outbox:"))).encrypt(b'{"text": "t", "html": "h"}')}).scalar()
        engine.dispose()
        with before.app_context():
            upgrade()
        after = make_app(urls, SECRET_KEY="after-" + "w" * 32, CHECK_RLS=False)  # and SECRET_KEY rotated
        with after.app_context():
            user = db.session.get(User, user_id)
            assert user.totp_secret[:1] == cipher.FORMAT
            assert mfa._totp(user).secret == totp
            assert mfa.verify(user, "abc123-def456") == "backup_code"
            assert outbox.body(db.session.get(OutboxMessage, message_id)) == {"text": "t", "html": "h"}
            db.session.rollback()
    finally:
        drop_database(db_urls["admin"], scratch)


# --- rotation and crypto-shredding ---------------------------------------------------------------
# A tenant table with a sealed column, as the integrations area's credentials will be: under forced
# RLS, registered with the keyring.

NEW_MASTER = "bmV3LW1hc3Rlci1rZXktMzItYnl0ZXMtbG9uZy0tLS0="


@pytest.fixture(scope="module")
def vault_table(app, db_urls):
    import sqlalchemy as sa
    from conftest import APP_ROLE
    engine = sa.create_engine(db_urls["owner"], poolclass=sa.pool.NullPool)
    policy = "(tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid)"
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE key_test_secrets (tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE, "
                          "id uuid NOT NULL DEFAULT gen_random_uuid(), secret bytea, PRIMARY KEY (tenant_id, id))"))
        conn.execute(text("ALTER TABLE key_test_secrets ENABLE ROW LEVEL SECURITY"))
        conn.execute(text("ALTER TABLE key_test_secrets FORCE ROW LEVEL SECURITY"))
        conn.execute(text(f"CREATE POLICY tenant_isolation ON key_test_secrets USING {policy} WITH CHECK {policy}"))
        conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON key_test_secrets TO {APP_ROLE}"))
    keys.register("key_test_secrets", "secret")
    yield engine
    keys.REGISTRY.pop("key_test_secrets.secret", None)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE key_test_secrets"))
    engine.dispose()


def store(app, tenant_id, values: list[bytes]) -> dict:
    """{row id: plaintext}, sealed as an area would, in the tenant's scope."""
    import uuid
    from portal.database.context import tenant_scope
    rows = {}
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        for value in values:
            row_id = uuid.uuid4()
            db.session.execute(text("INSERT INTO key_test_secrets (tenant_id, id, secret) VALUES (:t, :i, :s)"),
                               {"t": tenant_id, "i": row_id, "s": keys.seal(value, tenant_id=tenant_id,
                                                                            table="key_test_secrets",
                                                                            column="secret", row_id=row_id)})
            rows[row_id] = value
        db.session.commit()
    return rows


def read_back(app, tenant_id) -> dict:
    """{row id: plaintext or the Unreadable}, as the app with its keyring reads them."""
    from portal.database.context import tenant_scope
    found = {}
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        for row_id, sealed in db.session.execute(text(
                "SELECT id, secret FROM key_test_secrets WHERE tenant_id = :t"), {"t": tenant_id}).all():
            try:
                found[row_id] = keys.unseal(bytes(sealed), tenant_id=tenant_id, table="key_test_secrets",
                                            column="secret", row_id=row_id)
            except keys.Unreadable as exc:
                found[row_id] = exc
        db.session.rollback()
    return found


def versions(app, tenant_id) -> list[int]:
    from portal.database.context import tenant_scope
    with app.app_context(), tenant_scope(db.session, tenant_id, actor="test:setup"):
        found = sorted(cipher.version_of(bytes(v)) for v in db.session.scalars(text(
            "SELECT secret FROM key_test_secrets WHERE tenant_id = :t"), {"t": tenant_id}))
        db.session.rollback()
    return found


def test_data_key_rotation_through_the_worker_keeps_data(app, db_urls, factory, vault_table):
    from test_mail_failures import run_worker

    with app.app_context():  # jobs other tests queued would keep the burst worker busy (test_jobs.quiet_queue)
        db.session.execute(text("DELETE FROM procrastinate_jobs"))
        db.session.commit()
    a, b = factory.tenant(sites=0, devices=0), factory.tenant(sites=0, devices=0)
    stored = store(app, a["id"], [b"alpha", b"beta", b"gamma"])
    others = store(app, b["id"], [b"delta"])
    old_copy = next(iter(stored))
    with app.app_context(), tenant_scope(db.session, a["id"], actor="test:setup"):
        old_sealed = bytes(db.session.execute(text("SELECT secret FROM key_test_secrets WHERE id = :i"),
                                              {"i": old_copy}).scalar())
        db.session.rollback()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["keys", "rotate", "--tenant", a["slug"]])
    assert result.exit_code == 0 and "to data key version 2" in result.output, result.output

    # Mid-rotation: the old values read, a new value takes version 2.
    assert read_back(app, a["id"]) == stored
    stored |= store(app, a["id"], [b"epsilon"])
    assert versions(app, a["id"]) == [1, 1, 1, 2]
    status = runner.invoke(args=["keys", "status", "--tenant", a["slug"]]).output
    assert f"{a['slug']}: v1 live" in status and "v2 live" in status and "ROTATING" in status
    assert "key_test_secrets.secret: v1: 3, v2: 1" in status
    again = runner.invoke(args=["keys", "rotate", "--tenant", a["slug"]]).output
    assert "Resumed the rotation" in again  # not a third version
    with app.app_context():
        installation_before = keys.installation_secret("backup-code-hmac")
        db.session.commit()
        first = db.session.execute(text("SELECT max(version) FROM installation_keys")).scalar()
        db.session.rollback()
    assert runner.invoke(args=["keys", "rotate", "--installation"]).exit_code == 0

    run_worker(db_urls, {"KEYS_RESEAL_BATCH": 2})
    assert versions(app, a["id"]) == [2, 2, 2, 2] and read_back(app, a["id"]) == stored
    assert versions(app, b["id"]) == [1] and read_back(app, b["id"]) == others
    status = runner.invoke(args=["keys", "status", "--tenant", a["slug"]]).output
    assert f"{a['slug']}: v1 retired, v2 live" in status and "ROTATING" not in status
    # The installation's own key too: its secrets, TOTP secrets and queued emails all re-sealed.
    assert f"installation: v{first} retired, v{first + 1} live" in status
    for column in ("users.totp_secret", "email_outbox.payload", "installation_secrets.value"):
        line = next(line for line in status.splitlines() if line.strip().startswith(column + ":"))
        assert f"v{first}:" not in line, line
    with app.app_context():
        keys.forget()
        assert keys.installation_secret("backup-code-hmac") == installation_before
        db.session.rollback()
    with app.app_context():
        keys.forget()
        with pytest.raises(keys.Unreadable, match="retired"):  # the old key is gone: a copy of v1 is noise
            keys.unseal(old_sealed, tenant_id=a["id"], table="key_test_secrets", column="secret", row_id=old_copy)
    # Said in the tenant's audit trail, in words.
    with app.app_context():
        from portal.auditlog.describe import sentence
        with tenant_scope(db.session, a["id"], actor="test:setup"):
            rows = db.session.execute(text("SELECT * FROM audit_logs WHERE tenant_id = :t AND action LIKE 'keys.%' "
                                           "ORDER BY created_at"), {"t": a["id"]}).all()
            db.session.rollback()
    assert [sentence(r, None) for r in rows] == [
        "The system started rotating the organization's encryption key (to version 2)",
        "The system finished rotating the organization's encryption key: 3 secret(s) re-encrypted with version 2, "
        "the old key destroyed"]


def test_master_key_rotation_rewraps_every_data_key(app, db_urls, factory, vault_table):
    from conftest import TEST_MASTER_KEY, make_app
    a = factory.tenant(sites=0, devices=0)
    stored = store(app, a["id"], [b"one", b"two"])
    with app.app_context():
        installation = keys.seal(b"mine", tenant_id=None, table="t", column="c", row_id=1)
        db.session.commit()
    both = make_app(db_urls, PORTAL_MASTER_KEYS=f"{NEW_MASTER},{TEST_MASTER_KEY}")
    new_only = make_app(db_urls, PORTAL_MASTER_KEYS=NEW_MASTER)
    try:
        with new_only.app_context():  # before: the new key alone reads nothing
            with pytest.raises(keys.Unreadable, match="not in PORTAL_MASTER_KEYS"):
                keys.unseal(installation, tenant_id=None, table="t", column="c", row_id=1)
        result = both.test_cli_runner().invoke(args=["keys", "rotate-master"])
        assert result.exit_code == 0 and "remove them from PORTAL_MASTER_KEYS" in result.output, result.output
        status = both.test_cli_runner().invoke(args=["keys", "status", "--tenant", a["slug"]]).output
        assert "wraps 0 live data key(s)" in status.splitlines()[2]  # the old key wraps nothing now
        # The old key can leave the environment: everything reads with the new one alone.
        assert read_back(new_only, a["id"]) == stored
        with new_only.app_context():
            assert keys.unseal(installation, tenant_id=None, table="t", column="c", row_id=1) == b"mine"
    finally:
        # Back under the test key, for the rest of the session's tests.
        back = make_app(db_urls, PORTAL_MASTER_KEYS=f"{TEST_MASTER_KEY},{NEW_MASTER}")
        assert back.test_cli_runner().invoke(args=["keys", "rotate-master"]).exit_code == 0
    with app.app_context():
        keys.forget()
    assert read_back(app, a["id"]) == stored


def test_purge_shreds_a_tenants_keys_even_in_a_restored_backup(app, db_urls, factory, vault_table, tmp_path):
    """Backup, purge, retire the master key the backup's keys were wrapped by, restore the backup: the
    purged tenant's secrets in it no longer decrypt with the live keyring; a surviving tenant's do, once
    the restored database adopts the live key rows."""
    import os
    import subprocess

    import pgserver
    import psycopg
    import sqlalchemy as sa
    from conftest import TEST_DB, TEST_MASTER_KEY, drop_database, make_app
    from portal.database.provision import libpq_url, url_for_role

    gone, kept = factory.tenant(sites=0, devices=0), factory.tenant(sites=0, devices=0)
    gone_rows, kept_rows = store(app, gone["id"], [b"gone-secret"]), store(app, kept["id"], [b"kept-secret"])
    with app.app_context(), acting_as(db.session, "test:setup"):
        db.session.execute(text("UPDATE tenants SET status = 'pending_deletion', deletion_requested_at = now(), "
                                "purge_after = now() - interval '1 day' WHERE id = :t"), {"t": gone["id"]})
        db.session.commit()
        test_master = keys.master_keys()[0][0]
    tools = os.path.join(os.path.dirname(pgserver.__file__), "pginstall", "bin")
    backup, restored = tmp_path / "backup.dump", f"portal_restored_{os.getpid()}"
    source = libpq_url(sa.engine.make_url(db_urls["admin"]).set(database=TEST_DB).render_as_string(False))
    subprocess.run([f"{tools}/pg_dump", "-Fc", "-f", str(backup), "-d", source], check=True)

    purge = app.test_cli_runner().invoke(args=["tenants", "purge"]).output
    assert gone["slug"] not in purge or "Their data keys are destroyed" in purge
    status = app.test_cli_runner().invoke(args=["keys", "status"]).output
    assert f"{gone['slug']} (purged " in status and test_master in status.split("Purged tenants")[1]
    assert read_back(app, gone["id"]) == {}  # the live rows are gone with it
    # Finish the shredding: a new master key, every data key re-wrapped, the old key out of the env.
    both = make_app(db_urls, PORTAL_MASTER_KEYS=f"{NEW_MASTER},{TEST_MASTER_KEY}")
    live = make_app(db_urls, PORTAL_MASTER_KEYS=NEW_MASTER)
    try:
        assert both.test_cli_runner().invoke(args=["keys", "rotate-master"]).exit_code == 0
        assert "Purged tenants" not in live.test_cli_runner().invoke(args=["keys", "status"]).output
        admin = sa.engine.make_url(db_urls["admin"])
        drop_database(db_urls["admin"], restored)
        with psycopg.connect(libpq_url(admin.render_as_string(False)), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{restored}" OWNER portal_test_owner TEMPLATE template0')
        subprocess.run([f"{tools}/pg_restore", "--exit-on-error", "--single-transaction", "-d",
                        libpq_url(admin.set(database=restored).render_as_string(False)), str(backup)], check=True)
        urls = {**db_urls, "app": url_for_role(db_urls["admin"], "portal_test_app", restored),
                "owner": url_for_role(db_urls["admin"], "portal_test_owner", restored)}
        from_backup = make_app(urls, PORTAL_MASTER_KEYS=NEW_MASTER)
        # The backup still holds the purged tenant's wrapped key and sealed value...
        assert len(read_back(from_backup, gone["id"])) == 1
        # ...which the live keyring cannot open: its master key is retired.
        assert all(isinstance(v, keys.Unreadable) for v in read_back(from_backup, gone["id"]).values())
        assert all(isinstance(v, keys.Unreadable) for v in read_back(from_backup, kept["id"]).values())
        # Restoring for real: the backup adopts the live key rows; the survivor reads, the purged stays noise.
        adopted = from_backup.test_cli_runner().invoke(args=["keys", "adopt", "--from", db_urls["owner"]])
        assert adopted.exit_code == 0, adopted.output
        assert read_back(from_backup, kept["id"]) == kept_rows
        assert all(isinstance(v, keys.Unreadable) for v in read_back(from_backup, gone["id"]).values())
        # (While the old master key was still configured, the backup did read: retiring it is the shred.)
        assert read_back(make_app(urls, PORTAL_MASTER_KEYS=TEST_MASTER_KEY), gone["id"]) == gone_rows
    finally:
        back = make_app(db_urls, PORTAL_MASTER_KEYS=f"{TEST_MASTER_KEY},{NEW_MASTER}")
        assert back.test_cli_runner().invoke(args=["keys", "rotate-master"]).exit_code == 0
        drop_database(db_urls["admin"], restored)


def test_retiring_waits_for_a_transaction_still_sealing_with_the_old_key(app, factory, vault_table):
    """No value is lost to a rotation: a value sealed with the old version by a transaction that commits
    while the re-sealing runs is re-sealed before the old key is destroyed."""
    import threading
    import uuid

    from portal.keys.rotation import reseal, start

    t = factory.tenant(sites=0, devices=0)["id"]
    sealed, release, row_id = threading.Event(), threading.Event(), uuid.uuid4()

    def slow_writer():
        with app.app_context(), tenant_scope(db.session, t, actor="test:setup"):
            value = keys.seal(b"late", tenant_id=t, table="key_test_secrets", column="secret", row_id=row_id)
            db.session.execute(text("INSERT INTO key_test_secrets (tenant_id, id, secret) VALUES (:t, :i, :s)"),
                               {"t": t, "i": row_id, "s": value})
            sealed.set()
            release.wait(10)
            db.session.commit()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert sealed.wait(10)
    with app.app_context():
        start(t)
        db.session.commit()
    result = {}

    def rotate():
        with app.app_context():
            result["r"] = reseal(t, batch=10)

    rotation = threading.Thread(target=rotate)
    rotation.start()
    rotation.join(1.0)
    assert rotation.is_alive()  # retiring waits for the writer's transaction
    release.set()
    writer.join(10)
    rotation.join(10)
    assert result["r"].retired == [1] and result["r"].resealed == 1
    assert versions(app, t) == [2] and read_back(app, t) == {row_id: b"late"}
