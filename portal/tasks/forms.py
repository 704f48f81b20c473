from __future__ import annotations

from uuid import UUID

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from ..oneline import SingleLine
from .models import COMMENT_MAX, DESCRIPTION_MAX, TITLE_MAX, TaskPriority, TaskStatus
from .services import TaskData


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _uuid(value) -> UUID | None:
    try:
        return UUID(value) if value else None
    except (TypeError, ValueError):
        return None


PRIORITY_CHOICES = [SelectChoice(p.value, p.value.title()) for p in TaskPriority]
STATUS_CHOICES = [SelectChoice(s.value, s.label.capitalize()) for s in TaskStatus]


class TaskForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired("Give the task a title."), Length(max=TITLE_MAX),
                                              SingleLine()],
                        filters=[_strip])
    description = TextAreaField("Description", validators=[Optional(), Length(max=DESCRIPTION_MAX)],
                                description="Plain text; web addresses become links.", render_kw={"rows": 6})
    priority = SelectField("Priority", choices=PRIORITY_CHOICES, default=TaskPriority.MEDIUM.value)
    due_on = DateField("Due date", validators=[Optional()],
                       description="A date at the task's site (its time zone), else the organization's.")
    site_id = SelectField("Site", validate_choice=False)
    device_id = SelectField("Device", validate_choice=False)
    assignee_id = SelectField("Assignee", validate_choice=False)

    def __init__(self, *args, sites=(), devices=(), members=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.site_id.choices = [SelectChoice("", "No site")] + [SelectChoice(str(s.id), s.name) for s in sites]
        self.device_id.choices = [SelectChoice("", "No device")] + [
            SelectChoice(str(d.id), d.name, render_kw={"data-site": str(d.site_id)}, optgroup=d.site_name)
            for d in devices]
        self.assignee_id.choices = [SelectChoice("", "Nobody yet")] + [
            SelectChoice(str(m.id), m.name or m.email) for m in members]

    def to_data(self) -> TaskData:
        return TaskData(title=self.title.data or "", description=self.description.data or "",
                        priority=TaskPriority(self.priority.data), due_on=self.due_on.data,
                        site_id=_uuid(self.site_id.data), device_id=_uuid(self.device_id.data),
                        assignee_id=_uuid(self.assignee_id.data))

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for name in ("site_id", "device_id", "assignee_id"):
            field = getattr(self, name)
            if field.data and _uuid(field.data) is None:
                field.errors.append("Choose one of the options.")
                ok = False
        return ok

    @classmethod
    def for_task(cls, task, **choices) -> TaskForm:
        return cls(title=task.title, description=task.description, priority=TaskPriority(task.priority).value,
                   due_on=task.due_on, site_id=str(task.site_id or ""), device_id=str(task.device_id or ""),
                   assignee_id=str(task.assignee_id or ""), **choices)


class StatusForm(FlaskForm):
    status = SelectField("Status", choices=STATUS_CHOICES, validators=[DataRequired()])
    next = StringField()


class CommentForm(FlaskForm):
    body = TextAreaField("Comment", validators=[DataRequired("Write a comment first."), Length(max=COMMENT_MAX)],
                         render_kw={"rows": 3})


class BulkForm(FlaskForm):
    ids = SelectMultipleField("Tasks", validate_choice=False)
    status = SelectField("Status", choices=[SelectChoice("", "Status…")] + STATUS_CHOICES, validate_choice=False)
    assignee_id = SelectField("Assignee", validate_choice=False)
    next = StringField()
