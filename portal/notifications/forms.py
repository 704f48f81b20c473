from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField

from .kinds import CATALOGUE, CHANNEL_LABELS, Channel, Kind


def preferences_form(current: dict[Kind, Channel], formdata=None) -> FlaskForm:
    """One choice per kind that the user may change (security kinds are shown, not offered)."""
    class PreferencesForm(FlaskForm):
        pass
    choices = [SelectChoice(c.value, CHANNEL_LABELS[c]) for c in Channel]
    for kind, info in CATALOGUE.items():
        if not info.security:
            setattr(PreferencesForm, kind.value, SelectField(info.label, choices=choices))
    return PreferencesForm(formdata=formdata, data={k.value: v.value for k, v in current.items()})


def chosen(form) -> dict[Kind, Channel]:
    return {kind: Channel(getattr(form, kind.value).data) for kind, info in CATALOGUE.items() if not info.security}
