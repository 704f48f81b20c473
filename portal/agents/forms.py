from __future__ import annotations

from datetime import timedelta

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ..jsondata import JsonValueError, parse_object
from .models import Command

COMMANDS = [SelectChoice(Command.REBOOT.value, "Reboot"),
            SelectChoice(Command.UPDATE_FIRMWARE.value, "Update firmware"),
            SelectChoice(Command.COLLECT_DIAGNOSTICS.value, "Collect diagnostics"),
            SelectChoice(Command.CUSTOM.value, "Custom (JSON parameters)")]
EXPIRIES = {"15m": ("15 minutes", timedelta(minutes=15)), "1h": ("1 hour", timedelta(hours=1)),
            "24h": ("24 hours", timedelta(hours=24)), "7d": ("7 days", timedelta(days=7))}


def _json_object(form, field):
    if not (field.data or "").strip():
        return
    try:
        parse_object(field.data)
    except JsonValueError as exc:
        raise ValidationError("Give a JSON object, e.g. {\"script\": \"status\"}." if str(exc).startswith("must be")
                              else f"This {exc}.") from exc


class TaskForm(FlaskForm):
    command = SelectField("Command", choices=COMMANDS, validators=[DataRequired()])
    version = StringField("Firmware version (for an update)", validators=[Optional(), Length(max=64)],
                          filters=[lambda v: v.strip() if isinstance(v, str) else v])
    parameters = TextAreaField("Parameters (JSON object, for a custom command)",
                               validators=[Optional(), Length(max=4000), _json_object],
                               render_kw={"rows": 3, "spellcheck": "false", "class": "input mono"})
    expires = SelectField("Expires after", choices=[SelectChoice(k, v[0]) for k, v in EXPIRIES.items()],
                          default="1h", validators=[DataRequired()])

    def task_parameters(self) -> dict:
        if self.command.data == Command.UPDATE_FIRMWARE.value:
            return {"version": self.version.data or ""}
        if self.command.data == Command.CUSTOM.value and (self.parameters.data or "").strip():
            return parse_object(self.parameters.data)
        return {}

    def expires_in(self) -> timedelta:
        return EXPIRIES[self.expires.data][1]


class CredentialForm(FlaskForm):
    gateway = BooleanField("Gateway: may report heartbeats for up to 1,000 of this organization's devices at once")


class PlainForm(FlaskForm):
    """CSRF only (cancel, revoke)."""
