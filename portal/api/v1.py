"""/api/v1: sites and devices for API clients, through the same services, queries, rules, plan
limits and audit as the pages. Views parse JSON, call one service, answer JSON."""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from uuid import UUID

from flask import Blueprint, jsonify, request, url_for

from ..analytics import events as analytics_events
from ..devices import queries as device_queries
from ..devices import services as device_services
from ..devices.models import DeviceStatus
from ..extensions import db
from ..rules import RuleViolation
from ..sites import queries as site_queries
from ..sites import services as site_services
from ..tenancy import Permission, current
from . import auth, openapi, schemas
from .conventions import bad_cursor, body, check_if_match, cursor, document, idempotent, query, refused, uncursor
from .problems import Problem, field_error

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def _enter():
    if request.endpoint == "api.openapi_document":  # public: the document itself
        return
    auth.enter()
    return


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document (public: it describes, it grants nothing)."""
    return jsonify(openapi.document())


# --- Sites ---------------------------------------------------------------------------------

def site_document(site) -> dict:
    meta = site.meta or {}
    return schemas.SiteOut().dump({
        "id": site.id, "name": site.name, "address": site.address, "timezone": site.timezone,
        "latitude": str(site.latitude) if site.latitude is not None else None,
        "longitude": str(site.longitude) if site.longitude is not None else None,
        "operating_hours": meta.get("operating_hours") or {}, "contact": meta.get("contact") or {},
        "archived": site.archived_at is not None, "archived_at": site.archived_at,
        "created_at": site.created_at, "updated_at": site.updated_at})


def _site(site_id: UUID, *, for_update: bool = False):
    site = site_queries.get_site(current(), site_id)
    if site is None:
        raise Problem(404, "No such site.")
    return site


def _site_data(values: dict, site=None) -> site_services.SiteData:
    meta = (site.meta or {}) if site is not None else {}
    base = {"name": site.name, "address": site.address, "timezone": site.timezone, "latitude": site.latitude,
            "longitude": site.longitude, "operating_hours": meta.get("operating_hours") or {},
            "contact": meta.get("contact") or {}} if site is not None else {}
    merged = {**base, **values}
    return site_services.SiteData(
        name=merged["name"], timezone=merged.get("timezone") or "UTC", address=merged.get("address"),
        latitude=_decimal(merged.get("latitude")), longitude=_decimal(merged.get("longitude")),
        operating_hours=merged.get("operating_hours") or {},
        contact={k: v for k, v in (merged.get("contact") or {}).items() if v})


def _fresh(instance):
    """The row as stored: triggers set updated_at, which the ETag covers."""
    db.session.flush()
    db.session.refresh(instance)
    return instance


def _decimal(value):
    return Decimal(str(value)) if value is not None else None


@bp.get("/sites")
@auth.scope(Permission.SITES_VIEW)
def list_sites():
    args = query(schemas.SiteListArgs())
    archived = args["archived"]
    after = uncursor(args["cursor"]) if args.get("cursor") else ""
    rows, next_name, _, _ = site_queries.site_page(current(), after=after, archived=archived)
    next_url = url_for(".list_sites", cursor=cursor(next_name), **({"archived": "true"} if archived else {})) \
        if next_name else None
    headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else {}
    return document({"items": [site_document(site) for site, _ in rows], "next": next_url}, etag=False,
                    headers=headers)


@bp.post("/sites")
@auth.scope(Permission.SITES_WRITE)
@idempotent
def create_site():
    values = body(schemas.SiteIn())
    try:
        site = site_services.create_site(current(), _site_data(values))
    except RuleViolation as exc:
        raise refused(exc) from None
    return document(site_document(site), 201, headers={"Location": url_for(".get_site", site_id=site.id)})


@bp.get("/sites/<uuid:site_id>")
@auth.scope(Permission.SITES_VIEW)
def get_site(site_id: UUID):
    return document(site_document(_site(site_id)))


@bp.patch("/sites/<uuid:site_id>")
@auth.scope(Permission.SITES_WRITE)
def update_site(site_id: UUID):
    site = _site(site_id)
    check_if_match(site_document(site))
    values = body(schemas.SitePatch(), partial=True)
    try:
        site = site_services.update_site(current(), site, _site_data(values, site))
    except RuleViolation as exc:
        raise refused(exc) from None
    return document(site_document(_fresh(site)))


@bp.delete("/sites/<uuid:site_id>")
@auth.scope(Permission.SITES_WRITE)
def delete_site(site_id: UUID):
    site = _site(site_id)
    check_if_match(site_document(site))
    try:
        site_services.delete_site(current(), site)
    except RuleViolation as exc:
        raise refused(exc) from None
    return "", 204


@bp.post("/sites/<uuid:site_id>/archive")
@auth.scope(Permission.SITES_WRITE)
def archive_site(site_id: UUID):
    site = _site(site_id)
    check_if_match(site_document(site), required=False)
    try:
        site = site_services.archive_site(current(), site)
    except RuleViolation as exc:
        raise refused(exc) from None
    return document(site_document(_fresh(site)))


@bp.post("/sites/<uuid:site_id>/restore")
@auth.scope(Permission.SITES_WRITE)
def restore_site(site_id: UUID):
    site = _site(site_id)
    check_if_match(site_document(site), required=False)
    try:
        site = site_services.restore_site(current(), site)
    except RuleViolation as exc:
        raise refused(exc) from None
    return document(site_document(_fresh(site)))


# --- Devices -------------------------------------------------------------------------------

def device_document(device) -> dict:
    meta = device.meta or {}
    return schemas.DeviceOut().dump({
        "id": device.id, "name": device.name, "type": device.type, "serial_number": device.serial_number,
        "status": device.status, "site_id": device.site_id, "firmware_version": device.firmware_version,
        "last_seen_at": device.last_seen_at, "specs": meta.get("specs"), "configuration": meta.get("configuration"),
        "created_at": device.created_at, "updated_at": device.updated_at})


def _device(device_id: UUID, *, for_update: bool = False):
    device = device_queries.get_device(current(), device_id, for_update=for_update)
    if device is None:
        raise Problem(404, "No such device.")
    return device


def _device_data(values: dict, device=None) -> device_services.DeviceData:
    if device is not None:
        meta = device.meta or {}
        values = {"name": device.name, "type": device.type, "serial_number": device.serial_number,
                  "site_id": device.site_id, "status": device.status, "firmware_version": device.firmware_version,
                  "last_seen_at": device.last_seen_at, "specs": meta.get("specs"),
                  "configuration": meta.get("configuration"), **values}
    return device_services.DeviceData(
        name=values["name"], type=values["type"], serial_number=values["serial_number"], site_id=values["site_id"],
        status=values.get("status") or DeviceStatus.OFFLINE, firmware_version=values.get("firmware_version") or None,
        last_seen_at=values.get("last_seen_at"), specs=values.get("specs") or None,
        configuration=values.get("configuration") or None)


LIST_ARGS = ("q", "site", "type", "status", "sort", "dir", "limit")


@bp.get("/devices")
@auth.scope(Permission.DEVICES_VIEW)
def list_devices():
    """The device list's filters (site, type, status), prefix search (q) and sorts, paged by
    cursor: the same statement as the page's list, at any depth."""
    args = query(schemas.DeviceListArgs())
    state = device_queries.ListState.from_args(request.args)
    state = replace(state, after=args.get("cursor", ""), before="")
    if state.after and not device_queries.readable_cursor(state.after, state.sort):
        raise bad_cursor()  # the page starts over on a bad cursor; a client is told
    limit = args.get("limit", device_queries.PAGE_SIZE)
    page = device_queries.device_page(current(), state, limit)
    # The hot path: plain dicts, as schemas.DeviceItem documents them (the rows are psycopg's own
    # values; marshmallow per row would cost more than the query).
    items = [{"id": str(r.id), "name": r.name, "type": str(r.type), "serial_number": r.serial_number,
              "status": str(r.status), "site_id": str(r.site_id), "site_name": r.site_name,
              "firmware_version": r.firmware_version,
              "last_seen_at": r.last_seen_at.isoformat() if r.last_seen_at else None} for r in page.rows]
    next_url = None
    if page.next_cursor:
        args = {k: request.args[k] for k in LIST_ARGS if request.args.get(k)}
        next_url = url_for(".list_devices", **args, cursor=page.next_cursor)
    headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else {}
    return document({"items": items, "next": next_url}, etag=False, headers=headers)


@bp.post("/devices")
@auth.scope(Permission.DEVICES_WRITE)
@idempotent
def create_device():
    values = body(schemas.DeviceIn())
    try:
        device = device_services.create_device(current(), _device_data(values))
    except RuleViolation as exc:
        raise refused(exc) from None
    return document(device_document(device), 201, headers={"Location": url_for(".get_device", device_id=device.id)})


@bp.get("/devices/<uuid:device_id>")
@auth.scope(Permission.DEVICES_VIEW)
def get_device(device_id: UUID):
    return document(device_document(_device(device_id)))


@bp.patch("/devices/<uuid:device_id>")
@auth.scope(Permission.DEVICES_WRITE)
def update_device(device_id: UUID):
    device = _device(device_id, for_update=True)
    check_if_match(device_document(device))
    values = body(schemas.DevicePatch(), partial=True)
    try:
        device = device_services.update_device(current(), device, _device_data(values, device))
    except RuleViolation as exc:
        raise refused(exc) from None
    return document(device_document(_fresh(device)))


@bp.post("/devices/<uuid:device_id>/decommission")
@auth.scope(Permission.DEVICES_WRITE)
def decommission_device(device_id: UUID):
    device = _device(device_id, for_update=True)
    check_if_match(device_document(device), required=False)
    try:
        device_services.decommission_device(current(), device)
    except RuleViolation as exc:
        raise refused(exc) from None
    return document(device_document(_fresh(device)))


@bp.post("/devices/bulk-status")
@auth.scope(Permission.DEVICES_STATUS)
def bulk_status():
    """Set the status of up to 500 devices: all of them or none (a device not found, or not
    visible to the client, refuses the whole request)."""
    values = body(schemas.BulkStatusIn())
    ctx = current()
    ids = set(values["ids"])
    devices = device_queries.visible_devices(ctx, ids, for_update=True)
    if len(devices) != len(ids):
        raise Problem(404, "Some of these devices do not exist or are not visible to this client; nothing changed.")
    try:
        changed = device_services.change_status(ctx, devices, values["status"])
    except RuleViolation as exc:
        raise refused(exc) from None
    return document({"changed": changed}, etag=False)


# --- Analytics events ------------------------------------------------------------------------

@bp.post("/events")
@auth.scope(Permission.EVENTS_WRITE)
def record_events():
    """Record up to 1,000 custom analytics events, all or none: every invalid event is named by
    its JSON pointer in the problem's errors."""
    values = body(schemas.EventsIn())
    result = analytics_events.record_custom(current(), values["events"], source="api")
    if not result.ok:
        raise Problem(422, "Some events are not valid; none was recorded.",
                      errors=[{"field": "/events" + e.pointer, "detail": e.message} for e in result.errors])
    return document({"recorded": result.recorded}, 201, etag=False)
