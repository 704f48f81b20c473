from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length

from ..oneline import SingleLine


def _strip(value):
    return " ".join(value.split()) if isinstance(value, str) else value


class ClientForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100), SingleLine()], filters=[_strip],
                       description="Who or what uses it, e.g. “Inventory sync”.")
    scopes = SelectMultipleField("What the client may do", coerce=str, validate_choice=False)
    sites = SelectMultipleField("Restrict to sites (optional)", coerce=str, validate_choice=False)
