from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length


class RoleForm(FlaskForm):
    # A system role's name or a custom role's id; the view resolves it within the tenant.
    role = StringField("Role", validators=[DataRequired(), Length(max=64)])
