"""Agent rules: heartbeats (one device, or a gateway's batch in set-based SQL), tasks queued by
people and claimed, reported on and expired.

People's changes take the request's TenantContext; an agent's take its AgentPrincipal and are
audited with the agent as the actor. Nothing here commits.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from sqlalchemy import select, text

from .. import audit
from ..devices.models import Device, DeviceStatus
from ..analytics import events as analytics
from ..devices.services import snapshot, tell_error
from ..extensions import db
from ..rules import RuleViolation
from ..tenancy import Permission, TenantContext
from ..tenants.models import Tenant
from .credentials import AgentPrincipal
from .models import AgentResult, AgentTask, Command, TaskStatus

BATCH_MAX = 1000
AGENT_STATUSES = (DeviceStatus.ONLINE, DeviceStatus.OFFLINE, DeviceStatus.MAINTENANCE, DeviceStatus.ERROR)
EXPIRY_MIN, EXPIRY_MAX = timedelta(minutes=1), timedelta(days=7)


# --- heartbeats -------------------------------------------------------------------------------

@dataclass
class Beat:
    device_id: UUID
    status: DeviceStatus | None = None
    firmware: str | None = None
    metrics: dict[str, Any] | None = None


@dataclass
class BeatOutcome:
    accepted: int = 0
    changed: int = 0
    skipped: list[dict] = field(default_factory=list)


class UnknownDevices(Exception):
    def __init__(self, ids: list[UUID]):
        super().__init__("unknown devices")
        self.ids = ids


# One statement for the whole batch: the input as a record set, the devices locked in id order
# (two overlapping batches never deadlock), updated, with their previous status and firmware.
_BEAT = text("""
WITH input AS (
    SELECT * FROM jsonb_to_recordset(CAST(:items AS jsonb))
        AS i(device_id uuid, status device_status, firmware varchar, metrics jsonb)
), old AS (
    SELECT d.id, d.status, d.firmware_version FROM devices d JOIN input i ON i.device_id = d.id
     WHERE d.tenant_id = :tenant ORDER BY d.id FOR NO KEY UPDATE OF d
)
UPDATE devices d
   SET last_seen_at = now(),
       status = coalesce(i.status, d.status),
       firmware_version = coalesce(i.firmware, d.firmware_version),
       metadata = CASE WHEN i.metrics IS NULL THEN d.metadata
                       ELSE jsonb_set(d.metadata, '{metrics}', i.metrics) END
  FROM input i JOIN old o ON o.id = i.device_id
 WHERE d.tenant_id = :tenant AND d.id = o.id AND o.status <> 'decommissioned'
RETURNING d.id, o.status AS old_status, o.firmware_version AS old_firmware, d.status, d.firmware_version,
          d.name, d.type, d.serial_number, d.site_id, d.last_seen_at, d.metadata
""")
_DURABLE_COMMIT = text("SELECT set_config('synchronous_commit', 'on', true)")
_KNOWN = text("SELECT id, status FROM devices WHERE tenant_id = :tenant AND id = ANY(:ids)")


def _quiet(meta: dict | None) -> dict:
    """Metadata without the metrics, which change at every heartbeat and are not history."""
    return {k: v for k, v in (meta or {}).items() if k != "metrics"}


def heartbeat(agent: AgentPrincipal, beats: list[Beat]) -> BeatOutcome:
    """Record heartbeats: last seen always; status and firmware when given. An audit row only for
    a device whose status or firmware changed (a heartbeat that changes nothing else writes none).
    Unknown ids (including another tenant's) refuse the whole batch; decommissioned devices are
    skipped and reported."""
    if len(beats) > BATCH_MAX:
        raise RuleViolation(f"At most {BATCH_MAX} devices per batch.", field="devices")
    if len({b.device_id for b in beats}) != len(beats):
        raise RuleViolation("A device appears more than once in the batch.", field="devices")
    items = [{"device_id": str(b.device_id), "status": b.status.value if b.status else None,
              "firmware": b.firmware, "metrics": b.metrics} for b in beats]
    rows = db.session.execute(_BEAT, {"items": json.dumps(items), "tenant": agent.tenant_id}).all()
    outcome = BeatOutcome(accepted=len(rows))
    if len(rows) < len(beats):
        seen = {r.id for r in rows}
        missing = [b.device_id for b in beats if b.device_id not in seen]
        known = dict(db.session.execute(_KNOWN, {"tenant": agent.tenant_id, "ids": missing}).all())
        unknown = [m for m in missing if m not in known]
        if unknown:
            raise UnknownDevices(unknown)
        outcome.skipped = [{"device_id": str(m), "reason": "decommissioned"} for m in missing]
    changes: dict[str, list] = {"device.status": [], "device.update": []}
    moved: list[tuple[Any, str, UUID]] = []  # (device now, status before, id) of status changes
    for r in rows:
        if r.old_status == r.status and r.old_firmware == r.firmware_version:
            continue
        now = SimpleNamespace(name=r.name, type=r.type, serial_number=r.serial_number, status=r.status,
                              site_id=r.site_id, firmware_version=r.firmware_version, last_seen_at=r.last_seen_at,
                              meta=_quiet(r.metadata))
        after = snapshot(now)
        before = after | {"status": DeviceStatus(r.old_status).value, "firmware_version": r.old_firmware}
        action = "device.status" if r.old_status != r.status else "device.update"
        changes[action].append((r.id, before, after))
        if action == "device.status":
            moved.append((now, before["status"], r.id))
    for action, rows_changed in changes.items():
        if rows_changed:
            audit.record_many(agent.tenant_id, agent.actor, action, "device", rows_changed)
            outcome.changed += len(rows_changed)
    if moved:
        _status_moved(agent, moved)
    if outcome.changed:
        # The heartbeat's transaction began without waiting for its WAL flush at commit
        # (credentials.authenticate(soft=True)): a status change and its audit rows are durable.
        db.session.execute(_DURABLE_COMMIT)
    return outcome


def _status_moved(agent: AgentPrincipal, moved: list) -> None:
    """Status changes reported by agents count as any other: one analytics statement for the
    batch (the devices-online chart adds them up), and the people of a device gone to error hear
    of it as when a person sets it."""
    analytics.record_many(agent.tenant_id, [row for row in (
        analytics.device_status_event(SimpleNamespace(id=device_id, site_id=now.site_id, status=now.status), before,
                                      None) for now, before, device_id in moved) if row])
    analytics.emit_device_events(agent.tenant_id, [
        (SimpleNamespace(id=device_id, site_id=now.site_id, status=now.status), before) for now, before, device_id in moved])
    errors = [(now, device_id) for now, before, device_id in moved
              if DeviceStatus(now.status) == DeviceStatus.ERROR]
    if errors:
        tenant = db.session.get(Tenant, agent.tenant_id)
        ctx = SimpleNamespace(tenant_id=agent.tenant_id, user_id=None, tenant=tenant)
        for now, device_id in errors:
            tell_error(ctx, SimpleNamespace(id=device_id, name=now.name, site_id=now.site_id))


# --- tasks: people ----------------------------------------------------------------------------

def queue_task(ctx: TenantContext, devices: list[Device], command: Command, parameters: dict[str, Any],
               expires_in: timedelta) -> list[AgentTask]:
    """One task per device (already limited to what the actor sees). Custom commands run whatever
    the device's agent makes of them: they need agents:manage, not only agents:run."""
    if command == Command.CUSTOM and not ctx.can(Permission.AGENTS_MANAGE):
        raise RuleViolation("Custom commands are for those who manage agents.", field="command")
    if command == Command.UPDATE_FIRMWARE and not str(parameters.get("version") or "").strip():
        raise RuleViolation("Give the firmware version to update to.", field="version")
    if not EXPIRY_MIN <= expires_in <= EXPIRY_MAX:
        raise RuleViolation("Choose an expiry between 1 minute and 7 days.", field="expires_in")
    if any(d.status == DeviceStatus.DECOMMISSIONED for d in devices):
        raise RuleViolation("Decommissioned devices take no commands.", field="command")
    now = datetime.now(UTC)
    tasks = [AgentTask(tenant_id=ctx.tenant_id, device_id=d.id, command=command, parameters=parameters,
                       created_by=ctx.user_id, created_at=now, expires_at=now + expires_in) for d in devices]
    db.session.add_all(tasks)
    db.session.flush()  # the audit rows name the tasks
    audit.record_many(ctx.tenant_id, ctx.user_id, "agent_task.queue", "agent_task",
                      [(t.id, None, task_snapshot(t, d.name)) for t, d in zip(tasks, devices)])
    return tasks


def task_snapshot(task: AgentTask, device_name: str | None = None) -> dict:
    out = {"device_id": str(task.device_id), "command": Command(task.command).value,
           "parameters": task.parameters, "status": TaskStatus(task.status).value,
           "expires_at": task.expires_at.isoformat()}
    if device_name:
        out["name"] = device_name
    return out


def cancel_task(ctx: TenantContext, task: AgentTask) -> None:
    if TaskStatus(task.status) != TaskStatus.QUEUED:
        raise RuleViolation("Only a task that no agent has picked up yet can be cancelled.")
    before = task_snapshot(task)
    task.status, task.finished_at = TaskStatus.CANCELLED, datetime.now(UTC)
    audit.record(ctx.tenant_id, ctx.user_id, "agent_task.cancel", "agent_task", task.id, before=before,
                 after=task_snapshot(task))
    analytics.agent_task_finished(ctx.tenant_id, task_id=task.id, device_id=task.device_id,
                                  command=Command(task.command).value, status="cancelled", actor=ctx.user_id)


def device_tasks(ctx: TenantContext, device: Device, limit: int = 20) -> list[tuple[AgentTask, AgentResult | None]]:
    rows = db.session.execute(
        select(AgentTask, AgentResult)
        .outerjoin(AgentResult, (AgentResult.tenant_id == AgentTask.tenant_id) & (AgentResult.task_id == AgentTask.id))
        .where(AgentTask.tenant_id == ctx.tenant_id, AgentTask.device_id == device.id)
        .order_by(AgentTask.created_at.desc(), AgentTask.id.desc()).limit(limit)).all()
    return [(t, r) for t, r in rows]


def get_task(ctx: TenantContext, device: Device, task_id: UUID, *, for_update: bool = False) -> AgentTask | None:
    stmt = select(AgentTask).where(AgentTask.tenant_id == ctx.tenant_id, AgentTask.device_id == device.id,
                                   AgentTask.id == task_id)
    return db.session.scalar(stmt.with_for_update() if for_update else stmt)


# --- tasks: agents ----------------------------------------------------------------------------

# The oldest queued, unexpired task of the device, locked without waiting: a second poll running at
# the same moment skips the row the first one holds, so a task is claimed exactly once.
_CLAIM = text("""
UPDATE agent_tasks SET status = 'running', claimed_at = now()
 WHERE tenant_id = :tenant AND id = (
       SELECT id FROM agent_tasks
        WHERE tenant_id = :tenant AND device_id = :device AND status = 'queued' AND expires_at > now()
        ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, command, parameters, expires_at, created_at
""")


def claim_task(agent: AgentPrincipal):
    row = db.session.execute(_CLAIM, {"tenant": agent.tenant_id, "device": agent.device_id}).first()
    if row is not None:
        audit.record(agent.tenant_id, agent.actor, "agent_task.claim", "agent_task", row.id,
                     after={"status": "running", "command": row.command, "device_id": str(agent.device_id)})
    return row


LOG_MAX = 64 * 1024        # characters of log text
OUTPUT_MAX = 64 * 1024     # bytes of output JSON


@dataclass
class Report:
    status: TaskStatus
    exit_code: int | None
    output: dict[str, Any] | None
    log: str | None


def report_result(agent: AgentPrincipal, task_id: UUID, report: Report) -> AgentTask | None:
    """The agent's result for a task it claimed. None: not a task of this device."""
    task = db.session.scalar(select(AgentTask).where(
        AgentTask.tenant_id == agent.tenant_id, AgentTask.device_id == agent.device_id, AgentTask.id == task_id)
        .with_for_update().execution_options(populate_existing=True))  # the claim was an SQL UPDATE
    if task is None:
        return None
    if TaskStatus(task.status) != TaskStatus.RUNNING:
        raise RuleViolation(f"This task is {TaskStatus(task.status).value}: it takes no result.", field="status")
    before = task_snapshot(task)
    task.status, task.finished_at = report.status, datetime.now(UTC)
    db.session.add(AgentResult(tenant_id=agent.tenant_id, task_id=task.id, status=report.status,
                               exit_code=report.exit_code, output=report.output, log=report.log))
    audit.record(agent.tenant_id, agent.actor, "agent_task.result", "agent_task", task.id, before=before,
                 after=task_snapshot(task) | {"exit_code": report.exit_code})
    analytics.agent_task_finished(agent.tenant_id, task_id=task.id, device_id=task.device_id,
                                  command=Command(task.command).value, status=TaskStatus(report.status).value,
                                  exit_code=report.exit_code)
    return task


# --- expiry (the scheduled job) ---------------------------------------------------------------

_EXPIRE = text("""
UPDATE agent_tasks SET status = 'expired', finished_at = now()
 WHERE tenant_id = :tenant AND status IN ('queued', 'running') AND expires_at <= now()
RETURNING id, device_id, command, status
""")


def expire_overdue(tenant_id: UUID) -> int:
    """End the tenant's unfinished tasks past their expiry (queued ones no agent took, running
    ones no agent reported on), audited with no actor (the system)."""
    rows = db.session.execute(_EXPIRE, {"tenant": tenant_id}).all()
    if rows:
        audit.record_many(tenant_id, None, "agent_task.expire", "agent_task",
                          [(r.id, None, {"device_id": str(r.device_id), "command": r.command, "status": "expired"})
                           for r in rows])
        analytics.record_many(tenant_id, [analytics.event(
            analytics.AGENT_TASK, {"task_id": str(r.id), "device_id": str(r.device_id), "command": r.command,
                                   "status": "expired", "exit_code": None},
            name="expired", source="agent", source_id=str(r.id)) for r in rows])
    return len(rows)
