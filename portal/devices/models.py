from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Computed, DateTime, ForeignKey, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Timestamps, db, jsonb, pg_enum, uuid_pk


class DeviceType(enum.StrEnum):
    SENSOR = "sensor"
    CONTROLLER = "controller"
    GATEWAY = "gateway"
    CAMERA = "camera"
    ACTUATOR = "actuator"
    METER = "meter"
    BEACON = "beacon"
    ROUTER = "router"
    SERVER = "server"
    WORKSTATION = "workstation"


class DeviceStatus(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    MAINTENANCE = "maintenance"
    ERROR = "error"
    DECOMMISSIONED = "decommissioned"

    @property
    def state(self) -> str:
        """The status as a sentence says it: "is now in maintenance", "is now online"."""
        return {"maintenance": "in maintenance", "error": "in error"}.get(self.value, self.value)


class Device(Timestamps, db.Model):
    __tablename__ = "devices"
    __table_args__ = (
        # Serial numbers are unique per tenant whatever their case.
        UniqueConstraint("tenant_id", "serial_key"),
        # Tasks name a device of their site: their foreign key references this key.
        UniqueConstraint("tenant_id", "site_id", "id"),
        # A site with devices is archived, not deleted: RESTRICT keeps records from vanishing.
        ForeignKeyConstraint(["tenant_id", "site_id"], ["sites.tenant_id", "sites.id"], ondelete="RESTRICT"),
        # Keyset pagination of the device list: each sort and filter has its (tenant_id, ..., id) index.
        # The name index also serves name-prefix search, the serial unique index serial-prefix search.
        Index("ix_devices_tenant_name_key", "tenant_id", "name_key", "id"),
        Index("ix_devices_tenant_site_name_key", "tenant_id", "site_id", "name_key", "id"),
        Index("ix_devices_tenant_status_name_key", "tenant_id", "status", "name_key", "id"),
        Index("ix_devices_tenant_type_name_key", "tenant_id", "type", "name_key", "id"),
        Index("ix_devices_tenant_last_seen_key", "tenant_id", "last_seen_key", "id"),
        Index("ix_devices_metadata", "metadata", postgresql_using="gin"),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[UUID] = uuid_pk()
    site_id: Mapped[UUID]
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[DeviceType] = mapped_column(pg_enum(DeviceType, "device_type"))
    serial_number: Mapped[str] = mapped_column(String(100))
    status: Mapped[DeviceStatus] = mapped_column(pg_enum(DeviceStatus, "device_status"), server_default="offline")
    firmware_version: Mapped[str | None] = mapped_column(String(64))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meta: Mapped[dict[str, Any]] = jsonb("metadata")

    # Sort and search keys kept by PostgreSQL. Lower-cased in the "C" collation, byte order is the
    # same on every server, so a prefix is an index range (no pg_trgm in the embedded server).
    name_key: Mapped[str] = mapped_column(String(200, collation="C"),
                                          Computed("lower((name)::text)", persisted=True))
    serial_key: Mapped[str] = mapped_column(String(100, collation="C"),
                                            Computed("lower((serial_number)::text)", persisted=True))
    # "Never seen" sorts as the epoch (-infinity would not load into Python), so the "last seen"
    # sort pages by keyset without NULL special cases.
    last_seen_key: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        Computed("COALESCE(last_seen_at, '1970-01-01 00:00:00+00'::timestamp with time zone)", persisted=True))
