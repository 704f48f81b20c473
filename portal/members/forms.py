from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField

from .models import MembershipRole


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[SelectChoice(r.value, r.value.title()) for r in MembershipRole])
