from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length

from ..oneline import SingleLine
from ..security.forms import NewPasswordForm


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

