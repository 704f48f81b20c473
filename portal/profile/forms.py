from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length, ValidationError

from ..oneline import SingleLine
from ..security.forms import NewPasswordForm
from ..timezones import is_timezone


class NameForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200), SingleLine()], render_kw={"autocomplete": "name"})


class EmailForm(FlaskForm):
    email = EmailField("New email address", validators=[DataRequired(), Email(), Length(max=320)],
                       render_kw={"autocomplete": "email"})


class PasswordForm(NewPasswordForm):
    """A change from the profile proves the current password first."""
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)],
                            render_kw={"autocomplete": "current-password"})


class ConfirmForm(FlaskForm):
    """Re-authentication before sensitive changes."""
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password", "autofocus": True})
    code = StringField("Authentication code (if two-factor is on)", validators=[Length(max=20)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


class CodeForm(FlaskForm):
    code = StringField("Code from your authenticator app", validators=[DataRequired(), Length(max=20)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})



class TimezoneForm(FlaskForm):
    """The zone the portal's times are shown in; empty: the browser's (detected again)."""
    timezone = StringField("Time zone", filters=[lambda v: v.strip() if isinstance(v, str) else v],
                           description="An IANA name such as Europe/Paris or America/New_York. "
                                       "Leave it empty to use your browser's.",
                           render_kw={"list": "timezone-names", "autocomplete": "off", "spellcheck": "false"})

    def validate_timezone(self, field):
        # Checked against the installed list before any lookup (a long or path-like name is no zone).
        if field.data and not is_timezone(field.data):
            raise ValidationError(f"{field.data[:64]} is not a time zone: choose one from the list, "
                                  "such as Europe/Paris.")
