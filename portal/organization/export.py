"""A tenant's data as a zip of JSON Lines, one file per table (seed 004's data export), written by
the job worker. Everything of the tenant is in it, the audit log included; secrets are not:
no password hashes, token hashes or encrypted payloads."""
from __future__ import annotations

import hashlib
import json
import secrets
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

from flask import current_app
from sqlalchemy import select, text

from .. import keys
from ..database import replica
from ..database.context import tenant_scope
from ..extensions import db
from ..tenants.models import Tenant
from .models import TenantExport

# Columns never exported, whatever table they are in.
SECRET_COLUMNS = frozenset({"token_hash", "password_hash", "totp_secret", "payload", "secret", "secret_hash",
                            "credentials"})
LINK_HOURS = 24
# Partitions (analytics_events_p...) are read through their parent, the only one the serving role may read.
TENANT_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname
"""


def export_dir() -> Path:
    path = Path(current_app.config["EXPORT_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _lines(sql: str, params: dict, hidden: frozenset = SECRET_COLUMNS):
    """Rows as JSON, through a server-side cursor: memory stays flat however big the table."""
    result = db.session.execute(text(sql), params, execution_options={"stream_results": True, "yield_per": 1000})
    for (row,) in result:
        yield json.dumps({k: v for k, v in row.items() if k not in hidden}, ensure_ascii=False) + "\n"


def _hidden(table: str) -> frozenset:
    """SECRET_COLUMNS and the table's sealed columns (keys.register): an export carries no ciphertext."""
    return SECRET_COLUMNS | {entry.column for entry in keys.REGISTRY.values() if entry.table == table}


def write(export_id: UUID, tenant_id: UUID) -> tuple[str, int, Path]:
    """Write the zip of a queued export (in the caller's tenant scope); the link's token and the
    row count. The token is returned once, for the email; only its hash is kept."""
    tables = [name for (name,) in db.session.execute(text(TENANT_TABLES))]
    path = export_dir() / f"{tenant_id}-{export_id}.zip"
    counts: dict[str, int] = {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for table in ["tenants", "users"] + tables:
            if table == "tenants":
                sql, params = "SELECT row_to_json(t) FROM tenants t WHERE id = :t", {"t": tenant_id}
            elif table == "users":  # the members' names and emails, nothing of their accounts' secrets
                sql = ("SELECT json_build_object('id', u.id, 'email', u.email, 'name', u.name) FROM users u "
                       "JOIN user_tenant_associations m ON m.user_id = u.id WHERE m.tenant_id = :t ORDER BY u.email")
                params = {"t": tenant_id}
            elif table in ("tenant_exports", "tenant_keys"):
                continue  # the exports' own bookkeeping; the data keys (wrapped) stay with the installation
            else:
                sql, params = f'SELECT row_to_json(t) FROM "{table}" t WHERE tenant_id = :t', {"t": tenant_id}
            n = 0
            with zf.open(f"{table}.jsonl", "w") as out:
                for line in _lines(sql, params, _hidden(table)):
                    out.write(line.encode())
                    n += 1
            counts[table] = n
        zf.writestr("manifest.json", json.dumps({
            "format": "portal-export-v1", "tenant_id": str(tenant_id),
            "exported_at": datetime.now(timezone.utc).isoformat(), "tables": counts}, indent=2))
    token = secrets.token_urlsafe(32)
    return token, sum(counts.values()), path


def run(export_id: UUID, tenant_id: UUID) -> None:
    """The job's body: one export, its row and the owner's email; failures are recorded."""
    from ..mail.outbox import enqueue
    from ..accounts.models import User
    with tenant_scope(db.session, tenant_id, actor="job:organization.export"):
        export = db.session.scalar(select(TenantExport).where(TenantExport.tenant_id == tenant_id,
                                                              TenantExport.id == export_id).with_for_update())
        # "running": the worker that started it was lost (killed mid-export) and jobs.requeue_stalled gave
        # the job back to the queue only after that worker's heartbeats stopped: run it again, whole.
        if export is None or export.status not in ("queued", "running"):
            return
        export.status = "running"
        db.session.commit()
    with tenant_scope(db.session, tenant_id, actor="job:organization.export"):
        export = db.session.get(TenantExport, (tenant_id, export_id))
        tenant = db.session.get(Tenant, tenant_id)
        try:
            # On the replica once it has replayed everything committed before now (the request too).
            with replica.reads(fresh=True, wait=2):
                token, rows, path = write(export_id, tenant_id)
        except Exception as exc:  # noqa: BLE001 (recorded on the export, shown to the owner)
            db.session.rollback()
            export = db.session.get(TenantExport, (tenant_id, export_id))
            export.status, export.error = "failed", str(exc)[:500]
            export.finished_at = datetime.now(timezone.utc)
            db.session.commit()
            raise
        export.status, export.rows, export.size_bytes = "done", rows, path.stat().st_size
        export.finished_at = datetime.now(timezone.utc)
        export.token_hash = hash_token(token)
        export.expires_at = export.finished_at + timedelta(hours=LINK_HOURS)
        requester = db.session.get(User, export.requested_by) if export.requested_by else None
        if requester is not None:
            link = current_app.config["BASE_URL"] + f"/t/{tenant.slug}/settings/exports/{token}"
            enqueue("tenant_export", requester.email, f"The export of {tenant.name} is ready", "tenant_export",
                    tenant=tenant, export=export, link=link, user=requester)
        db.session.commit()


def file_of(export: TenantExport) -> Path:
    return export_dir() / f"{export.tenant_id}-{export.id}.zip"
