from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import DateTime, ForeignKey, ForeignKeyConstraint, Index, String, UniqueConstraint
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


class Device(Timestamps, db.Model):
    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "serial_number"),
        # A site with devices is archived, not deleted: RESTRICT keeps records from vanishing.
        ForeignKeyConstraint(["tenant_id", "site_id"], ["sites.tenant_id", "sites.id"], ondelete="RESTRICT"),
        # Keyset pagination of the device list, overall and per site.
        Index("ix_devices_tenant_name", "tenant_id", "name", "id"),
        Index("ix_devices_tenant_site_name", "tenant_id", "site_id", "name", "id"),
        Index("ix_devices_tenant_status", "tenant_id", "status", "name", "id"),
        Index("ix_devices_tenant_last_seen", "tenant_id", "last_seen_at", "id"),
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
