"""Every event type the portal emits: what it means and the JSON schema of its `data`.

Webhook bodies follow the Standard Webhooks shape: `{"type": ..., "timestamp": ..., "data": ...}`.
The OpenAPI document carries one schema per type (`Event_<type>`), generated from this table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UUID = {"type": "string", "format": "uuid"}
NULLABLE_UUID = {"type": ["string", "null"], "format": "uuid"}
TEXT = {"type": "string"}


@dataclass(frozen=True)
class EventType:
    description: str
    properties: dict[str, Any]
    required: tuple[str, ...] = ()
    # Deliveries of an ordered type reach an endpoint one at a time, in the order of the events
    # (a later status change never overtakes an earlier one that is being retried).
    ordered: bool = False
    example: dict[str, Any] = field(default_factory=dict)

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "description": self.description, "properties": self.properties,
                "required": list(self.required or self.properties), "additionalProperties": False}


DEVICE_STATUSES = ["online", "offline", "maintenance", "error", "decommissioned"]

CATALOGUE: dict[str, EventType] = {
    "device.created": EventType(
        "A device was added (one at a time, by CSV import, or through the API).",
        {"device_id": UUID, "site_id": NULLABLE_UUID, "name": {"type": ["string", "null"]},
         "status": {"type": "string", "enum": DEVICE_STATUSES}}),
    "device.status_changed": EventType(
        "A device's status changed (by a person, the API or its agent).",
        {"device_id": UUID, "site_id": NULLABLE_UUID, "from": {"type": "string", "enum": DEVICE_STATUSES},
         "to": {"type": "string", "enum": DEVICE_STATUSES}}, ordered=True),
    "task.created": EventType(
        "A task was created.",
        {"task_id": UUID, "title": TEXT, "site_id": NULLABLE_UUID, "device_id": NULLABLE_UUID,
         "assignee_id": NULLABLE_UUID, "priority": TEXT, "due_on": {"type": ["string", "null"], "format": "date"}},
        ordered=True),
    "task.completed": EventType(
        "A task's status became done.",
        {"task_id": UUID, "title": TEXT, "completed_by": NULLABLE_UUID}, ordered=True),
    "member.joined": EventType(
        "Someone became a member of the organization (by accepting an invitation).",
        {"user_id": UUID, "role": TEXT}),
    "member.left": EventType(
        "A member left the organization or was removed from it.",
        {"user_id": UUID, "reason": {"type": "string", "enum": ["left", "removed"]}}),
    "invitation.accepted": EventType(
        "An invitation was accepted.",
        {"invitation_id": UUID, "user_id": UUID, "role": TEXT}),
    "agent.task_finished": EventType(
        "A command sent to a device's agent finished (succeeded, failed, expired or cancelled).",
        {"task_id": UUID, "device_id": UUID, "command": TEXT, "status": TEXT,
         "exit_code": {"type": ["integer", "null"]}}),
    "integration.test": EventType(
        "A test event, sent from an endpoint's page (\"Send test event\"); never emitted by a change.",
        {"message": TEXT}),
}
EMITTED = [name for name in CATALOGUE if name != "integration.test"]
