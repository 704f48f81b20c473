from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (BooleanField, DateTimeLocalField, SelectChoice, SelectField, SelectMultipleField, StringField,
                     TextAreaField)
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ..jsondata import JsonValueError, parse_object
from ..oneline import SingleLine
from .models import DeviceStatus, DeviceType
from .services import DeviceData


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _json_object(form, field):
    if not (field.data or "").strip():
        return
    try:
        parse_object(field.data)
    except JsonValueError as exc:
        message = "Give a JSON object, e.g. {\"zones\": 12}." if str(exc).startswith("must be") else f"This {exc}."
        raise ValidationError(message) from exc


TYPE_CHOICES = [SelectChoice(t.value, t.value.title()) for t in DeviceType]
STATUS_CHOICES = [SelectChoice(s.value, s.value.title()) for s in DeviceStatus]


class DeviceForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200), SingleLine()], filters=[_strip])
    type = SelectField("Type", choices=TYPE_CHOICES, validators=[DataRequired()])
    serial_number = StringField("Serial number", validators=[DataRequired(), Length(max=100)], filters=[_strip],
                                render_kw={"autocomplete": "off", "spellcheck": "false"})
    site_id = SelectField("Site", validators=[DataRequired()])
    status = SelectField("Status", choices=STATUS_CHOICES, default=DeviceStatus.OFFLINE.value)
    firmware_version = StringField("Firmware version", validators=[Optional(), Length(max=64)], filters=[_strip])
    last_seen_at = DateTimeLocalField("Last seen (UTC)", validators=[Optional()], format="%Y-%m-%dT%H:%M")
    specs = TextAreaField("Specs (JSON object)", validators=[Optional(), _json_object],
                          render_kw={"rows": 4, "spellcheck": "false", "class": "input mono"})
    configuration = TextAreaField("Configuration (JSON object)", validators=[Optional(), _json_object],
                                  render_kw={"rows": 4, "spellcheck": "false", "class": "input mono"})

    def __init__(self, *args, sites=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.site_id.choices = [SelectChoice("", "Choose a site…")] + [SelectChoice(str(s.id), s.name) for s in sites]

    def validate_last_seen_at(self, field):
        if field.data and field.data.replace(tzinfo=timezone.utc) > datetime.now(timezone.utc) + timedelta(minutes=5):
            raise ValidationError("Last seen cannot be in the future.")

    def to_data(self) -> DeviceData:
        from uuid import UUID
        return DeviceData(
            name=self.name.data, type=DeviceType(self.type.data), serial_number=self.serial_number.data,
            site_id=UUID(self.site_id.data), status=DeviceStatus(self.status.data),
            firmware_version=self.firmware_version.data or None,
            last_seen_at=self.last_seen_at.data.replace(tzinfo=timezone.utc) if self.last_seen_at.data else None,
            specs=parse_object(self.specs.data) if (self.specs.data or "").strip() else None,
            configuration=parse_object(self.configuration.data) if (self.configuration.data or "").strip() else None)

    @classmethod
    def for_device(cls, device, sites) -> DeviceForm:
        meta = device.meta or {}
        seen = device.last_seen_at.astimezone(timezone.utc).replace(tzinfo=None) if device.last_seen_at else None
        return cls(sites=sites, name=device.name, type=device.type.value, serial_number=device.serial_number,
                   site_id=str(device.site_id), status=device.status.value, firmware_version=device.firmware_version,
                   last_seen_at=seen,
                   specs=json.dumps(meta["specs"], indent=2) if meta.get("specs") else "",
                   configuration=json.dumps(meta["configuration"], indent=2) if meta.get("configuration") else "")


class StatusForm(FlaskForm):
    status = SelectField("Status", choices=STATUS_CHOICES, validators=[DataRequired()])


class MoveForm(FlaskForm):
    site_id = SelectField("Move to site", validators=[DataRequired()])

    def __init__(self, *args, sites=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.site_id.choices = [SelectChoice("", "Choose a site…")] + [SelectChoice(str(s.id), s.name) for s in sites]


class BulkForm(FlaskForm):
    ids = SelectMultipleField("Devices", validate_choice=False)
    action = SelectField("Action", choices=[SelectChoice("status", "Change status"),
                                            SelectChoice("move", "Move to site")])
    status = SelectField("Status", choices=[SelectChoice("", "Status…")] + STATUS_CHOICES, validate_choice=False)
    site_id = SelectField("Site", validate_choice=False)
    next = StringField()


class ImportForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file to import.")],
                     render_kw={"accept": ".csv,text/csv"})
    partial = BooleanField("Import the valid rows even if some are rejected")
