from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectChoice, SelectField, SelectMultipleField, StringField, TextAreaField, widgets
from wtforms.validators import DataRequired, EqualTo, Length

from ..oneline import SingleLine
from ..tenancy.roles import DEFAULT, Role


class InviteForm(FlaskForm):
    emails = TextAreaField("Email addresses", validators=[DataRequired(message="Enter at least one email address."),
                                                          Length(max=20000)],
                           description="One or several, separated by commas or new lines.",
                           render_kw={"rows": 3, "autocomplete": "off"})
    role = SelectField("Role", default=DEFAULT.key)
    further_roles = SelectMultipleField("Further roles (optional)", coerce=str,
                                        description="Custom roles given besides the role above: they add what they allow.",
                                        option_widget=widgets.CheckboxInput(),
                                        widget=widgets.ListWidget(prefix_label=False))
    sites = SelectMultipleField("Pre-assign to sites (optional)", coerce=str,
                                option_widget=widgets.CheckboxInput(), widget=widgets.ListWidget(prefix_label=False))

    def __init__(self, *args, roles: list[Role], sites: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.role.choices = [SelectChoice(r.key, r.name) for r in roles]
        self.further_roles.choices = [SelectChoice(r.key, r.name) for r in roles if r.is_custom]
        self.sites.choices = [SelectChoice(str(s.id), s.name) for s in sites]


class SignUpForm(FlaskForm):
    """A new account for an invited address; the email comes from the invitation, not the form."""
    name = StringField("Your name", validators=[DataRequired(), Length(max=200), SingleLine()],
                       render_kw={"autocomplete": "name"})
    password = PasswordField("Choose a password", validators=[
        DataRequired(), Length(min=12, max=1024, message="Use at least 12 characters (up to 1024).")],
        render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("Repeat the password", validators=[
        DataRequired(), EqualTo("password", message="The passwords do not match.")],
        render_kw={"autocomplete": "new-password"})
