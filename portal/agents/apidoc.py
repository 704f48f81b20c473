"""The agents' API (api.py) as the OpenAPI document shows it: marshmallow schemas that describe
what api.py checks by hand (the same limits, from the same constants), and the operations table
portal/api/openapi.py adds to the document. Descriptions only: nothing here validates a request."""
from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from .api import BATCH_BODY_MAX, BODY_MAX, POLL_MAX
from .models import Command, TaskStatus
from .services import AGENT_STATUSES, BATCH_MAX, LOG_MAX, OUTPUT_MAX

NO_NUL = r"^[^\x00]*$"
SECURITY = [{"agentSecret": []}]
SCHEME = {"type": "http", "scheme": "bearer",
          "description": "The device's agent credential (`pda_…`), issued on the device's page; "
                         "a gateway's credential may report for the other devices of its organization."}


def _status():
    return fields.String(allow_none=True, validate=validate.OneOf([s.value for s in AGENT_STATUSES]))


def _firmware():
    return fields.String(allow_none=True, validate=validate.Length(min=1, max=64), metadata={"pattern": NO_NUL})


def _metrics():
    return fields.Dict(allow_none=True, metadata={"description": "The latest metrics: a JSON object of at most "
                                                                 "4 KiB, kept as they are"})


class Open(Schema):
    class Meta:
        unknown = INCLUDE  # members an agent newer than the portal sends are ignored, not refused


class Heartbeat(Open):
    """One device's heartbeat: every member optional (an empty object says "alive"); an object
    with `devices` is a batch instead."""
    status = _status()
    firmware = _firmware()
    metrics = _metrics()


class BatchItem(Heartbeat):
    device_id = fields.UUID(required=True)


class HeartbeatBatch(Open):
    """A gateway's batch: all or nothing; each device once."""
    devices = fields.List(fields.Nested(BatchItem), required=True, validate=validate.Length(min=1, max=BATCH_MAX))


class Skipped(Schema):
    device_id = fields.UUID(required=True)
    reason = fields.String(required=True)


class HeartbeatOut(Schema):
    accepted = fields.Integer(required=True)
    changed = fields.Integer(required=True, metadata={"description": "devices whose status or firmware changed"})
    skipped = fields.List(fields.Nested(Skipped), required=True,
                          metadata={"description": "decommissioned devices of the batch, not recorded"})


class Task(Schema):
    id = fields.UUID(required=True)
    command = fields.Enum(Command, by_value=True, required=True)
    parameters = fields.Dict(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)


class ResultIn(Open):
    status = fields.String(required=True, validate=validate.OneOf([TaskStatus.SUCCEEDED.value,
                                                                    TaskStatus.FAILED.value]))
    exit_code = fields.Integer(allow_none=True, validate=validate.Range(-2**31, 2**31 - 1))
    output = fields.Dict(allow_none=True, metadata={"description": f"A JSON object of at most "
                                                                   f"{OUTPUT_MAX // 1024} KiB, without NUL"})
    log = fields.String(allow_none=True, validate=validate.Length(max=LOG_MAX))


class ResultOut(Schema):
    id = fields.UUID(required=True)
    status = fields.Enum(TaskStatus, by_value=True, required=True)
    finished_at = fields.DateTime(allow_none=True, required=True)


class AgentProblem(Schema):
    """RFC 9457 problem details, with what an agent needs to act on them."""
    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.List(fields.Dict(keys=fields.String(), values=fields.String()),
                         metadata={"description": "422: [{field, detail}]"})
    limit = fields.Integer(metadata={"description": "413: the limit that was passed"})
    unknown_devices = fields.List(fields.UUID(), metadata={"description": "404: ids that are not devices of "
                                                                          "the organization"})


COMPONENTS = {"AgentHeartbeat": Heartbeat, "AgentHeartbeatBatch": HeartbeatBatch, "AgentHeartbeatOut": HeartbeatOut,
              "AgentTask": Task, "AgentResultIn": ResultIn, "AgentResultOut": ResultOut, "AgentProblem": AgentProblem}
PROBLEM = {"description": "Problem details (RFC 9457)",
           "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/AgentProblem"}}}}


def _json(schema: str, description: str = "OK") -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _problems(*codes: str) -> dict:
    return {code: PROBLEM for code in ("401", "403") + codes}


# endpoint -> operation (without security, which is SECURITY for all of them)
OPERATIONS = {
    "agent_api.heartbeat": {
        "operationId": "agent_heartbeat", "summary": "Report a heartbeat (one device, or a gateway's batch)",
        "description": "Sets the device's last seen, and its status and firmware when given; an audit row only "
                       "when they change. A batch (a gateway's credential only, up to "
                       f"{BATCH_MAX} devices, body up to {BATCH_BODY_MAX // 1024} KiB) is all or nothing.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"anyOf": [
            {"$ref": "#/components/schemas/AgentHeartbeat"}, {"$ref": "#/components/schemas/AgentHeartbeatBatch"}]}}}},
        "responses": {"200": _json("AgentHeartbeatOut"), **_problems("400", "404", "413", "422")}},
    "agent_api.next_task": {
        "operationId": "agent_next_task", "summary": "Claim the device's oldest queued task, waiting for one",
        "parameters": [{"name": "wait", "in": "query", "required": False,
                        "description": f"Seconds to wait for a task (default {POLL_MAX})",
                        "schema": {"type": "number", "minimum": 0, "maximum": POLL_MAX}}],
        "responses": {"200": _json("AgentTask", "The task, now running"),
                      "204": {"description": "No task came within the wait"}, **_problems("400", "422")}},
    "agent_api.result": {
        "operationId": "agent_task_result", "summary": "Report the result of a claimed task",
        "description": f"Body up to {BODY_MAX // 1024} KiB. 409 when the task is not running (any more).",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/AgentResultIn"}}}},
        "responses": {"200": _json("AgentResultOut"), **_problems("400", "404", "409", "413", "422")}},
}
