from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from ..oneline import SingleLine


def _strip(value):
    return " ".join(value.split()) if isinstance(value, str) else value


class IntegrationForm(FlaskForm):
    """The fields every provider has; the provider's own fields are declared in providers.py and
    read from the same POST (the template draws them from the declaration)."""
    name = StringField("Name", validators=[DataRequired(), Length(max=100), SingleLine()], filters=[_strip],
                       description="What it is for, e.g. “Orders to the ERP”.")
    description = StringField("Description (optional)", validators=[Length(max=500), SingleLine()], filters=[_strip])


class CredentialsForm(FlaskForm):
    """Only the CSRF token: the credential fields come from the provider's declaration."""
