"""/api/v1/agent/...: what a device's agent calls, with `Authorization: Bearer <device secret>`.

JSON in and out; errors are RFC 9457 problem details (application/problem+json). No cookies and
no CSRF: a bearer request carries no ambient authority (CSRF still guards every cookie route).
"""
from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any
from uuid import UUID

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ..devices.models import DeviceStatus
from ..database import conflicts
from ..errors import database_unavailable, safe_rollback
from ..extensions import csrf, db
from ..jsondata import JsonValueError, parse_object
from ..rules import RuleViolation
from . import credentials, services
from .models import TaskStatus

bp = Blueprint("agent_api", __name__, url_prefix="/api/v1/agent")
csrf.exempt(bp)

BODY_MAX = 256 * 1024         # a result: its log and output fit well within it
BATCH_BODY_MAX = 1024 * 1024  # a gateway's batch: 1,000 devices with about 1 KiB of metrics each
POLL_MAX = 25             # seconds a task poll may wait
FINAL = (TaskStatus.SUCCEEDED, TaskStatus.FAILED)


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str = "", **extra: Any):
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def problem_response(status: int, title: str, detail: str = "", **extra: Any):
    body = {"type": "about:blank", "title": title, "status": status, **({"detail": detail} if detail else {}), **extra}
    response = current_app.response_class(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="portal-agent"'
    return response


@bp.errorhandler(Problem)
def _problem(exc: Problem):
    safe_rollback()
    return problem_response(exc.status, exc.title, exc.detail, **exc.extra)


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException):
    safe_rollback()
    return problem_response(exc.code or 500, exc.name, exc.description or "")


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    safe_rollback()
    if conflicts.refused(exc):  # a policy refused the write (migration 0027): never a 500
        current_app.logger.warning("the database refused an agent's write: %s", exc)
        return problem_response(403, "Forbidden", conflicts.REFUSED_MESSAGE)
    if database_unavailable(exc):
        response = problem_response(503, "Service Unavailable", "The database is not answering.")
        response.headers["Retry-After"] = "5"
        return response
    current_app.logger.exception("agent API error: %s", exc)
    return problem_response(500, "Internal Server Error")


@bp.before_request
def _authenticate():
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Problem(401, "Unauthorized", "Send the device's agent secret as `Authorization: Bearer <secret>`.")
    agent = credentials.authenticate(secret.strip(), soft=request.endpoint == "agent_api.heartbeat")
    if agent is None:
        raise Problem(401, "Unauthorized", "This agent credential is not valid (unknown or revoked).")
    if agent.device_status == DeviceStatus.DECOMMISSIONED:
        raise Problem(403, "Forbidden", "This device is decommissioned.")
    g.agent = agent


def _body(limit: int = BODY_MAX, *, allow_nul: bool = False) -> dict:
    if (request.content_length or 0) > limit or len(request.get_data(cache=True)) > limit:
        raise Problem(413, "Content Too Large", f"The request body is larger than {limit // 1024} KiB.",
                      limit=limit)
    if not request.is_json:
        raise Problem(400, "Bad Request", "Send a JSON object (Content-Type: application/json).")
    try:
        return parse_object(request.get_data(cache=True), allow_nul=allow_nul)
    except JsonValueError as exc:
        if exc.path is None:
            raise Problem(400, "Bad Request", f"The body {exc}.") from None
        _invalid({exc.path or "body": str(exc)[0].upper() + str(exc)[1:] + "."})


def _invalid(errors: dict[str, str]):
    raise Problem(422, "Unprocessable Content", "The request has invalid fields.",
                  errors=[{"field": k, "detail": v} for k, v in errors.items()])


def _beat(item: dict, where: str, device_id: UUID | None = None) -> services.Beat:
    errors: dict[str, str] = {}
    if device_id is None:
        try:
            device_id = UUID(str(item.get("device_id")))
        except ValueError:
            errors[f"{where}device_id"] = "A device id (UUID) is required."
    status = None
    if item.get("status") is not None:
        try:
            status = DeviceStatus(item["status"])
            if status not in services.AGENT_STATUSES:
                raise ValueError
        except (ValueError, TypeError):
            errors[f"{where}status"] = "One of " + ", ".join(s.value for s in services.AGENT_STATUSES) + "."
    firmware = item.get("firmware")
    if firmware is not None and (not isinstance(firmware, str) or not 0 < len(firmware) <= 64 or "\x00" in firmware):
        errors[f"{where}firmware"] = "A firmware version of 1 to 64 characters."
    metrics = item.get("metrics")
    if metrics is not None and (not isinstance(metrics, dict) or len(json.dumps(metrics)) > 4096
                                or "\\u0000" in json.dumps(metrics)):
        errors[f"{where}metrics"] = "A JSON object of at most 4 KiB."
    if errors:
        _invalid(errors)
    return services.Beat(device_id, status, firmware, metrics)


@bp.post("/heartbeat")
def heartbeat():
    """One device's heartbeat, or a gateway's batch: {"devices": [{"device_id", "status", ...}]}."""
    agent, data = g.agent, _body(BATCH_BODY_MAX)
    if "devices" in data:
        if not agent.gateway:
            raise Problem(403, "Forbidden", "Only a gateway's credential may report for other devices.")
        items = data["devices"]
        if not isinstance(items, list) or not items:
            _invalid({"devices": "A non-empty list of device heartbeats."})
        if len(items) > services.BATCH_MAX:
            raise Problem(413, "Content Too Large", f"At most {services.BATCH_MAX} devices per batch "
                                                   f"({len(items)} sent).", limit=services.BATCH_MAX)
        beats = [_beat(i if isinstance(i, dict) else {}, f"devices[{n}].") for n, i in enumerate(items)]
    else:
        beats = [_beat(data, "", agent.device_id)]
    try:
        outcome = services.heartbeat(agent, beats)
    except services.UnknownDevices as exc:
        raise Problem(404, "Not Found", "Some devices are not devices of this organization; nothing was recorded.",
                      unknown_devices=[str(i) for i in exc.ids]) from None
    except RuleViolation as exc:
        _invalid({exc.field or "devices": exc.message})
    return jsonify(accepted=outcome.accepted, changed=outcome.changed, skipped=outcome.skipped)


def _task_json(row) -> dict:
    return {"id": str(row.id), "command": row.command, "parameters": row.parameters,
            "created_at": row.created_at.isoformat(), "expires_at": row.expires_at.isoformat()}


@bp.get("/tasks")
def next_task():
    """Claim the device's oldest queued task, waiting up to `wait` seconds (default and most 25)
    for one. The wait holds no database connection: each try is its own short transaction,
    and between tries the connection goes back to the pool (polling, every AGENT_POLL_SECONDS)."""
    unknown = sorted(set(request.args) - {"wait"})
    if unknown:  # as the API's lists do: a misspelt `wiat` would otherwise wait the full 25 s
        _invalid({name: "Not a parameter of this operation." for name in unknown})
    try:
        wait = float(request.args.get("wait", POLL_MAX))
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= POLL_MAX:  # as documented; NaN fails this comparison too
        _invalid({"wait": f"Seconds to wait, 0 to {POLL_MAX}."})
    interval = current_app.config.get("AGENT_POLL_SECONDS", 1.0)
    deadline = time.monotonic() + wait
    agent = g.agent
    while True:
        row = services.claim_task(agent)
        if row is not None:
            return jsonify(_task_json(row))
        db.session.commit()  # nothing claimed: end the transaction, give the connection back
        db.session.close()
        left = deadline - time.monotonic()
        if left <= 0:
            return "", 204
        time.sleep(min(interval, left))


@bp.post("/tasks/<task_id>/result")
def result(task_id: str):
    try:  # any id in the URL reaches here, so a malformed one is a problem+json 404 too
        task_uuid = UUID(task_id)
    except ValueError:
        raise Problem(404, "Not Found", "No such task for this device.") from None
    data = _body(allow_nul=True)  # a log's NUL characters are removed below, an output's refused
    errors: dict[str, str] = {}
    try:
        status = TaskStatus(data.get("status"))
        if status not in FINAL:
            raise ValueError
    except ValueError:
        errors["status"] = "succeeded or failed."
        status = TaskStatus.FAILED
    exit_code = data.get("exit_code")
    if exit_code is not None and (not isinstance(exit_code, int) or isinstance(exit_code, bool)
                                  or not -2**31 <= exit_code < 2**31):
        errors["exit_code"] = "An integer (32 bits)."
    output = data.get("output")
    if output is not None and not isinstance(output, dict):
        errors["output"] = "A JSON object."
    elif output is not None and len(json.dumps(output).encode()) > services.OUTPUT_MAX:
        errors["output"] = f"At most {services.OUTPUT_MAX // 1024} KiB of JSON."
    elif output is not None and "\\u0000" in json.dumps(output):
        errors["output"] = "JSON without NUL characters (PostgreSQL cannot store them)."
    log = data.get("log")
    if log is not None and not isinstance(log, str):
        errors["log"] = "Text."
    elif log is not None and len(log) > services.LOG_MAX:
        errors["log"] = f"At most {services.LOG_MAX:,} characters ({len(log):,} sent)."
    if errors:
        _invalid(errors)
    if log is not None:
        log = log.replace("\x00", "")
    try:
        task = services.report_result(g.agent, task_uuid, services.Report(status, exit_code, output, log))
    except RuleViolation as exc:
        raise Problem(409, "Conflict", exc.message) from None
    if task is None:
        raise Problem(404, "Not Found", "No such task for this device.")
    return jsonify(id=str(task.id), status=TaskStatus(task.status).value,
                   finished_at=task.finished_at.isoformat() if isinstance(task.finished_at, datetime) else None)
