from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from ..oneline import SingleLine


def _strip(value):
    return " ".join(value.split()) if isinstance(value, str) else value


class TokenForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100), SingleLine()], filters=[_strip],
                       description="The identity provider that will use it, e.g. “Okta” or “Entra ID”.")
