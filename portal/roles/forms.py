from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, SelectMultipleField, StringField, TextAreaField, widgets
from wtforms.validators import DataRequired, Length

from ..oneline import SingleLine
from ..tenancy.permissions import CATALOGUE, Permission
from .services import DESCRIPTION_MAX, NAME_MAX, RoleData


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class RoleForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(message="Give the role a name."),
                                           Length(max=NAME_MAX, message=f"Use at most {NAME_MAX} characters."),
                                           SingleLine()],
                       filters=[_strip], render_kw={"maxlength": NAME_MAX, "autocomplete": "off"})
    description = TextAreaField("Description (optional)", validators=[
        Length(max=DESCRIPTION_MAX, message=f"Use at most {DESCRIPTION_MAX} characters.")],
        filters=[_strip], render_kw={"rows": 2, "maxlength": DESCRIPTION_MAX})
    permissions = SelectMultipleField("What people with this role can do", coerce=str,
                                      choices=[SelectChoice(p.value, p.description) for p in CATALOGUE],
                                      option_widget=widgets.CheckboxInput(),
                                      widget=widgets.ListWidget(prefix_label=False))

    def to_data(self) -> RoleData:
        return RoleData(self.name.data or "", self.description.data or "",
                        frozenset(Permission(p) for p in self.permissions.data or ()))

    @classmethod
    def for_role(cls, role, *, copy: bool = False) -> RoleForm:
        form = cls(formdata=None)
        form.name.data = f"Copy of {role.name}"[:NAME_MAX] if copy else role.name
        form.description.data = role.description
        form.permissions.data = [p.value for p in role.permissions]
        return form


class DeleteRoleForm(FlaskForm):
    fallback = SelectField("Move its members and invitations to", coerce=str, validate_choice=False)

    def __init__(self, *args, choices: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.fallback.choices = [SelectChoice(r.key, r.name) for r in choices]
        if not self.fallback.data and choices:
            # Preselect the least powerful role: deleting must never quietly promote anyone.
            self.fallback.data = min(choices, key=lambda r: len(r.permissions)).key
