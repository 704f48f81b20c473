from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import DecimalField, EmailField, HiddenField, StringField
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional, ValidationError

from ..oneline import SingleLine
from ..timezones import is_timezone
from .services import WEEKDAYS, SiteData

DAY_NAMES = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday", "fri": "Friday",
             "sat": "Saturday", "sun": "Sunday"}
HOURS = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$")


def _hours(form, field):
    value = (field.data or "").strip()
    if value and not HOURS.match(value):
        raise ValidationError("Use HH:MM-HH:MM (24-hour clock), e.g. 08:00-18:00; leave empty when closed.")
    if value and value[6:] != "24:00" and value[6:] == value[:5]:
        raise ValidationError("Opening and closing times are the same.")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class SiteForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200), SingleLine()], filters=[_strip])
    address = StringField("Address", validators=[Optional(), Length(max=500)], filters=[_strip])
    latitude = DecimalField("Latitude", places=None, validators=[Optional(), NumberRange(-90, 90)],
                            render_kw={"inputmode": "decimal"})
    longitude = DecimalField("Longitude", places=None, validators=[Optional(), NumberRange(-180, 180)],
                             render_kw={"inputmode": "decimal"})
    timezone = StringField("Time zone (IANA)", validators=[DataRequired(), Length(max=64)], filters=[_strip],
                           default="UTC", render_kw={"list": "timezones", "autocomplete": "off"})
    mon = StringField("Monday", validators=[Optional(), _hours], filters=[_strip])
    tue = StringField("Tuesday", validators=[Optional(), _hours], filters=[_strip])
    wed = StringField("Wednesday", validators=[Optional(), _hours], filters=[_strip])
    thu = StringField("Thursday", validators=[Optional(), _hours], filters=[_strip])
    fri = StringField("Friday", validators=[Optional(), _hours], filters=[_strip])
    sat = StringField("Saturday", validators=[Optional(), _hours], filters=[_strip])
    sun = StringField("Sunday", validators=[Optional(), _hours], filters=[_strip])
    contact_name = StringField("Contact name", validators=[Optional(), Length(max=200)], filters=[_strip])
    contact_phone = StringField("Contact phone", validators=[Optional(), Length(max=50)], filters=[_strip],
                                render_kw={"type": "tel"})
    contact_email = EmailField("Contact email", validators=[Optional(), Email(), Length(max=320)], filters=[_strip])

    def validate_timezone(self, field):
        if field.data and not is_timezone(field.data):
            raise ValidationError("Pick an IANA time zone such as Europe/Berlin or America/New_York.")

    def validate_longitude(self, field):
        if (self.latitude.data is None) != (field.data is None):
            raise ValidationError("Give both latitude and longitude, or neither.")

    def hour_fields(self):
        return [getattr(self, day) for day in WEEKDAYS]

    def to_data(self) -> SiteData:
        return SiteData(name=self.name.data, address=self.address.data or None, latitude=self.latitude.data,
                        longitude=self.longitude.data, timezone=self.timezone.data,
                        operating_hours={day: getattr(self, day).data for day in WEEKDAYS if getattr(self, day).data},
                        contact={"name": self.contact_name.data, "phone": self.contact_phone.data,
                                 "email": self.contact_email.data})

    @classmethod
    def for_site(cls, site) -> SiteForm:
        meta = site.meta or {}
        hours, contact = meta.get("operating_hours") or {}, meta.get("contact") or {}
        return cls(obj=site, **{day: hours.get(day, "") for day in WEEKDAYS},
                   contact_name=contact.get("name", ""), contact_phone=contact.get("phone", ""),
                   contact_email=contact.get("email", ""))


class AssignmentForm(FlaskForm):
    user_id = HiddenField(validators=[DataRequired()])
    # Which fragment an htmx request wants back: the site page's panel or a member row's toggles.
    fragment = HiddenField(default="site")
    next = HiddenField()
