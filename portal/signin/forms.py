from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    # No format check at sign-in: an address is matched, not validated (admin@system.local is one).
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)],
                       render_kw={"autocomplete": "username webauthn", "autofocus": True})  # passkey autofill
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})


class SecondFactorForm(FlaskForm):
    code = StringField("Authentication code", validators=[DataRequired(), Length(max=20)],
                       description="The 6-digit code from your authenticator app, or one of your backup codes.",
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True})


class ForgotForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)],
                       render_kw={"autocomplete": "username", "autofocus": True})
