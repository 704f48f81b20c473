"""A month of sample events for a tenant (`flask seed`), so its charts are not empty: status
changes that end at each device's present status (so the devices-online chart adds up), members'
sign-ins on working days, and two custom event types."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from uuid import UUID

from .events import DEVICE_STATUS, MEMBER_SIGNIN, event, record_many

STATUSES = ("online", "offline", "maintenance", "error")


def load(tenant_id: UUID, devices: list[tuple[UUID, UUID, str]], members: list[UUID], days: int = 30,
         seed: int = 15) -> int:
    """`devices` = [(id, site_id, status now)]; the caller has entered the tenant."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    rows = []
    for device_id, site_id, status in devices:
        current = status
        if current == "decommissioned":
            continue
        for back in range(days):  # walking back in time: each change ends in the status after it
            if rng.random() < 0.18:
                at = now - timedelta(days=back, minutes=rng.randrange(1, 24 * 60))
                before = rng.choice([s for s in STATUSES if s != current])
                rows.append(event(DEVICE_STATUS, {"device_id": str(device_id), "site_id": str(site_id),
                                                  "from": before, "to": current}, at, source_id=str(device_id)))
                current = before
    for back in range(days):
        day = now - timedelta(days=back)
        if day.weekday() < 5:
            for user_id in members:
                if rng.random() < 0.7:
                    rows.append(event(MEMBER_SIGNIN, {"user_id": str(user_id)},
                                      day - timedelta(minutes=rng.randrange(60, 600)), user_id))
        for _ in range(rng.randrange(2, 9)):
            rows.append(event("door.opened", {"door": rng.choice(["lobby", "dock", "server room"])},
                              day - timedelta(minutes=rng.randrange(0, 24 * 60)), source="api"))
        if back % 7 == 3:
            rows.append(event("backup.done", {"gigabytes": rng.randrange(20, 90)}, day - timedelta(hours=3),
                              source="api"))
    rows.sort(key=lambda r: r["occurred_at"])
    return record_many(tenant_id, rows)
