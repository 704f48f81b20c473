from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, EmailField, IntegerField, PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional

from ..oneline import SingleLine
from .services import Profile, SecurityPolicy


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class ProfileForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(message="Give the organization a name."), Length(max=200),
                                       SingleLine()],
                       filters=[_strip], render_kw={"maxlength": 200})
    contact_email = EmailField("Contact email (optional)", validators=[Optional(), Email(), Length(max=320)],
                               filters=[_strip])
    slug = StringField("Address (/t/...)", validators=[Optional(), Length(max=63)], filters=[_strip],
                       description="Changing it: the old address leads members to the new one for 30 days.",
                       render_kw={"maxlength": 63, "autocomplete": "off", "spellcheck": "false"})

    timezone = StringField("Time zone (IANA)", validators=[Optional(), Length(max=64)], filters=[_strip],
                           description="The calendar of tasks without a site, e.g. Europe/Berlin. Empty: UTC.",
                           render_kw={"autocomplete": "off", "spellcheck": "false"})

    def to_data(self) -> Profile:
        return Profile(self.name.data or "", self.contact_email.data or None, self.slug.data or None,
                       self.timezone.data or None)


def _minutes(label, low, high, unit):
    return IntegerField(label, validators=[Optional(), NumberRange(low, high, message=f"Between {low} and {high} {unit}.")],
                        description="Empty: the portal's default.")


class SecurityForm(FlaskForm):
    require_mfa = BooleanField("Require two-factor authentication")
    mfa_grace_days = IntegerField("Days members have to set it up", validators=[
        Optional(), NumberRange(0, 90, message="Between 0 and 90 days.")], default=0)
    idle_timeout_minutes = _minutes("Sign out after this many idle minutes", 5, 1440, "minutes")
    absolute_timeout_hours = _minutes("Sign in again after this many hours", 1, 720, "hours")
    max_sessions = _minutes("Sessions a member may have at once", 1, 100, "sessions")
    share_member_signins = BooleanField("Let those who read the audit log see members' sign-ins")
    ip_allowlist = TextAreaField("Allowed networks (optional)", validators=[Length(max=5000)],
                                 description="One address or CIDR range per line (203.0.113.0/24, 2001:db8::/48). "
                                             "Empty: members may connect from anywhere.",
                                 render_kw={"rows": 3, "spellcheck": "false"})

    @classmethod
    def for_policy(cls, policy: dict) -> SecurityForm:
        form = cls(formdata=None)
        form.require_mfa.data = policy.get("require_mfa") is True
        for name in ("mfa_grace_days", "idle_timeout_minutes", "absolute_timeout_hours", "max_sessions"):
            value = policy.get(name)
            getattr(form, name).data = value if isinstance(value, int) else None
        form.ip_allowlist.data = "\n".join(policy.get("ip_allowlist") or [])
        form.share_member_signins.data = policy.get("share_member_signins") is True
        return form

    def to_data(self) -> SecurityPolicy:
        return SecurityPolicy(require_mfa=bool(self.require_mfa.data), mfa_grace_days=self.mfa_grace_days.data or 0,
                              idle_timeout_minutes=self.idle_timeout_minutes.data,
                              absolute_timeout_hours=self.absolute_timeout_hours.data,
                              max_sessions=self.max_sessions.data,
                              ip_allowlist=[line for line in (self.ip_allowlist.data or "").splitlines() if line.strip()],
                              share_member_signins=bool(self.share_member_signins.data))


class DeleteForm(FlaskForm):
    confirm = StringField("Type the organization's address to confirm", validators=[Length(max=63)],
                          render_kw={"autocomplete": "off", "spellcheck": "false"})
    password = PasswordField("Your password", render_kw={"autocomplete": "current-password"})


class LogoForm(FlaskForm):
    logo = FileField("New logo", description="PNG, JPEG or WebP, at most 256 KB and 1,024 pixels on each side. "
                                         "It is re-encoded: metadata such as location is removed.",
                     render_kw={"accept": "image/png,image/jpeg,image/webp"})


class AccentForm(FlaskForm):
    accent = StringField("Accent colour", validators=[DataRequired(message="Write a colour such as #1d4ed8.")],
                         filters=[_strip], description="# and six hexadecimal digits, dark enough for white text "
                                                       "(contrast at least 4.5:1).",
                         render_kw={"maxlength": 7, "placeholder": "#1d4ed8", "autocomplete": "off",
                                    "spellcheck": "false"})
