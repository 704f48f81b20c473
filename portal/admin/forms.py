from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (BooleanField, EmailField, IntegerField, SelectChoice, SelectField, SelectMultipleField, StringField,
                     TextAreaField)
from wtforms.validators import DataRequired, Email, InputRequired, Length, NumberRange

from ..oneline import SingleLine
from ..tenants.models import SLUG_PATTERN


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class NewTenantForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(message="Give the organization a name."), Length(max=200),
                                       SingleLine()],
                       filters=[_strip], render_kw={"maxlength": 200, "autocomplete": "off"})
    slug = StringField("Address (/t/...)", validators=[DataRequired(message="Choose its address."), Length(max=63)],
                       filters=[_strip, lambda v: v.lower() if isinstance(v, str) else v],
                       description="Lowercase letters, digits and hyphens.",
                       render_kw={"maxlength": 63, "pattern": SLUG_PATTERN.strip("^$"), "autocomplete": "off"})
    plan = SelectField("Plan", validate_choice=False)
    owner_email = EmailField("First owner's email", validators=[
        DataRequired(message="Enter the email of the person who will own it."), Email(), Length(max=320)],
        description="They receive an invitation to accept.", filters=[_strip])

    def __init__(self, *args, plans: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan.choices = [SelectChoice(p.key, p.name) for p in plans]


class StatusForm(FlaskForm):
    action = SelectField("Action", choices=[SelectChoice(a, a.title()) for a in ("suspend", "reactivate", "archive")])
    reason = TextAreaField("Reason (shown to members)", validators=[Length(max=500)], filters=[_strip],
                           render_kw={"rows": 2, "maxlength": 500})


class UserStatusForm(FlaskForm):
    action = SelectField("Action", choices=[SelectChoice("suspend", "Suspend"), SelectChoice("reactivate", "Reactivate")])
    reason = TextAreaField("Reason (shown to the person when they try to sign in)", validators=[Length(max=500)],
                           filters=[_strip], render_kw={"rows": 2, "maxlength": 500})


def _limit(label: str, minimum: int) -> IntegerField:
    return IntegerField(label, validators=[InputRequired(message="Enter a whole number."),
                                           NumberRange(min=minimum, max=100_000_000)])


class FeaturesForm(FlaskForm):
    features = SelectMultipleField("Features on top of the plan's", validate_choice=False)


class PlanForm(FlaskForm):
    plan = SelectField("Plan", validate_choice=False)
    use_plan = BooleanField("Use the plan's limits (otherwise the ones below, for this tenant only)")
    max_users = _limit("Users", 1)
    max_sites = _limit("Active sites", 0)
    max_devices = _limit("Devices in service", 0)
    max_integrations = _limit("Integrations", 0)
    max_api_clients = _limit("API clients", 0)

    def __init__(self, *args, plans: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan.choices = [SelectChoice(p.key, p.name) for p in plans]

    def limits(self) -> dict[str, int]:
        return {name: getattr(self, name).data for name in ("max_users", "max_sites", "max_devices",
                                                            "max_integrations", "max_api_clients")}
