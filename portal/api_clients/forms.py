from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import RadioField, SelectChoice, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from ..oneline import SingleLine


def _strip(value):
    return " ".join(value.split()) if isinstance(value, str) else value


class ClientForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100), SingleLine()], filters=[_strip],
                       description="Who or what uses it, e.g. “Inventory sync”.")
    scopes = SelectMultipleField("What the client may do", coerce=str, validate_choice=False)
    sites = SelectMultipleField("Restrict to sites (optional)", coerce=str, validate_choice=False)


class AppForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100), SingleLine()], filters=[_strip],
                       description="What people will see when it asks for access, e.g. “Acme Field App”.")
    redirect_uris = TextAreaField("Redirect URIs", validators=[DataRequired(), Length(max=10 * 2001)],
                                  description="One per line, matched exactly. https://…, or http://127.0.0.1:PORT/… "
                                              "(or localhost) for an app on the person's own computer.")
    client_type = RadioField("Type", choices=[SelectChoice("public", "Public: a mobile, desktop or browser app (no secret; PKCE)"),
                                              SelectChoice("confidential", "Confidential: a server that can keep a secret")],
                             default="public")
    scopes = SelectMultipleField("What the app may ask for", coerce=str, validate_choice=False)
