from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import InputRequired, NumberRange

from ..audit.retention import MAX_DAYS, MIN_DAYS


class RetentionForm(FlaskForm):
    days = IntegerField("Keep audit entries for (days)",
                        description=f"At least {MIN_DAYS} days (compliance minimum), at most {MAX_DAYS}.",
                        validators=[InputRequired("Enter a number of days."),
                                    NumberRange(MIN_DAYS, MAX_DAYS, f"Enter a number from {MIN_DAYS} to {MAX_DAYS}.")])
