from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from ..accounts.lifecycle import LOCALES, split_name
from ..oneline import SingleLine
from ..security.forms import NewPasswordForm
from ..timezones import is_timezone


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class NameForm(FlaskForm):
    """Given and family name; the display name (shown across the portal) is made from them.
    `name` alone (a whole name, as this form took before it had two fields) is split in two."""
    given_name = StringField("Given name", validators=[Length(max=100), SingleLine()], filters=[_strip],
                             render_kw={"autocomplete": "given-name", "maxlength": 100})
    family_name = StringField("Family name", validators=[Length(max=100), SingleLine()], filters=[_strip],
                              description="Optional. Your name is shown as given name, then family name.",
                              render_kw={"autocomplete": "family-name", "maxlength": 100})
    name = StringField("Full name", validators=[Optional(), Length(max=200), SingleLine()], filters=[_strip])

    def validate_given_name(self, field):
        if not field.data and not self.family_name.data and not self.name.data:
            raise ValidationError("Give at least one name.")

    def names(self) -> tuple[str, str]:
        if self.given_name.data or self.family_name.data:
            return self.given_name.data or "", self.family_name.data or ""
        return split_name(self.name.data or "")


class AvatarForm(FlaskForm):
    avatar = FileField("New picture", description="PNG, JPEG or WebP, at most 2 MB and 4,096 pixels on each side. "
                                                  "It is cut to a square and re-encoded: metadata such as location "
                                                  "is removed.",
                       render_kw={"accept": "image/png,image/jpeg,image/webp"})


class LocaleForm(FlaskForm):
    locale = SelectField("Language and region for dates and numbers", validate_choice=False,
                         choices=[SelectChoice("", "Your browser's")] +
                                 [SelectChoice(tag, label) for tag, label in LOCALES.items()])

    def validate_locale(self, field):
        if field.data and field.data not in LOCALES:
            raise ValidationError("Choose one of the listed languages and regions.")


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
