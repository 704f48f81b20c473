from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField, widgets
from wtforms.validators import DataRequired, Length


class RoleForm(FlaskForm):
    # A system role's name or a custom role's id; the view resolves it within the tenant.
    role = StringField("Role", validators=[DataRequired(), Length(max=64)])


class FurtherRolesForm(FlaskForm):
    # Custom role ids; the view resolves each within the tenant. None checked: none held.
    roles = SelectMultipleField("Further roles", coerce=str, validate_choice=False,
                                option_widget=widgets.CheckboxInput(), widget=widgets.ListWidget(prefix_label=False))
