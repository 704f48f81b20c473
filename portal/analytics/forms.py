from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

RANGES = [("7", "Last 7 days"), ("30", "Last 30 days"), ("90", "Last 90 days"), ("custom", "From – to")]
MAX_SPAN_DAYS = 366


class ChartForm(FlaskForm):
    """The chart's choices, read from the query string (a GET form: nothing to protect)."""

    class Meta:
        csrf = False

    type = StringField("Event type", validators=[Optional(), Length(max=100)])
    range = SelectField("Range", choices=RANGES, default="30", validate_choice=False)
    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])


class EventForm(FlaskForm):
    type = StringField("Type", validators=[InputRequired("Give the event a type, e.g. “maintenance.window”."),
                                           Length(max=100)],
                       description="Lower-case words separated by dots, e.g. maintenance.window",
                       id="event-type")  # the chart's filter above is id="type": ids are unique per page
    name = StringField("Label", validators=[Optional(), Length(max=200)], id="event-name")
    properties = TextAreaField("Properties (JSON object)", validators=[Optional(), Length(max=4096)],
                               description='Optional, e.g. {"site": "HQ"}', id="event-properties")
