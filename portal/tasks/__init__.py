"""Tasks at a tenant's sites and devices: /t/<slug>/tasks (list, board, pages), /tasks (my tasks
in every organization), and the open-tasks panel of the site and device pages."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import mine, panel, text
    from .models import TaskStatus
    from .views import bp
    app.register_blueprint(bp)
    app.register_blueprint(mine.bp)
    app.jinja_env.filters["linkify"] = text.linkify
    app.jinja_env.filters["task_change"] = panel.describe
    app.jinja_env.globals["task_panel"] = panel.task_panel
    app.jinja_env.globals["task_statuses"] = list(TaskStatus)
