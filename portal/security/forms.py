"""Forms for security steps that more than one page asks for."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length


class NewPasswordForm(FlaskForm):
    """Choosing a new password: the reset page, and the profile's change (with the current one)."""
    password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)],
                             description="At least 12 characters; a passphrase is easiest to remember.",
                             render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("Repeat the new password", validators=[
        DataRequired(), EqualTo("password", message="The passwords do not match.")],
        render_kw={"autocomplete": "new-password"})
