from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length

from ..oneline import SingleLine
from .services import NAME_MAX

# A credential's JSON is a few hundred bytes to a few kilobytes (attestation certificates).
CREDENTIAL_MAX = 64_000
TOO_LONG = f"A passkey's name has at most {NAME_MAX} characters."


class CredentialForm(FlaskForm):
    """The browser's answer to a ceremony, filled in by static/passkeys.js."""
    credential = HiddenField(validators=[Length(max=CREDENTIAL_MAX)])


class NewPasskeyForm(CredentialForm):
    name = StringField("Passkey name", validators=[Length(max=NAME_MAX, message=TOO_LONG), SingleLine()],
                       id="passkey-name",
                       description="Optional: a name you will recognise, such as \u201cWork laptop\u201d.",
                       render_kw={"autocomplete": "off"})


class RenameForm(FlaskForm):
    name = StringField("New name", validators=[DataRequired("Give the passkey a name."),
                                               Length(max=NAME_MAX, message=TOO_LONG), SingleLine()],
                       render_kw={"autocomplete": "off"})
