"""/notifications: the bell (count and latest, for htmx), the list, marking read, the
preferences form of /account, and the one-click unsubscribe page (no sign-in: the signed
token is the authority)."""
from __future__ import annotations

from uuid import UUID

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from ..accounts.models import User
from ..database.context import user_scope
from ..extensions import csrf, db
from ..redirects import safe_next
from ..security import events
from ..ui import toast, trigger
from ..words import plural
from . import services
from .forms import chosen, preferences_form
from .kinds import DIGEST_LABEL, label, message

bp = Blueprint("notifications", __name__, url_prefix="/notifications")


def _htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


@bp.get("/")
@login_required
def index():
    rows, older = services.page(current_user.id, request.args.get("before"))
    context = {"rows": rows, "older": older, "message": message, "first": not request.args.get("before")}
    if _htmx():  # one URL, two renderings
        return render_template("notifications/_list.html", **context)
    return render_template("notifications/index.html", **context)


@bp.get("/count")
def count():
    """Polled by the bell every 30 s: the session context and one index-only count."""
    if not current_user.is_authenticated:
        if _htmx():  # the session ended under an open page: an inert bell, not the sign-in page in the header
            return '<span id="bell-count" class="bell-count bell-none"></span>'
        return current_app.login_manager.unauthorized()
    return render_template("notifications/_bell_count.html", count=services.unread_count(current_user.id),
                           cap=services.COUNT_CAP)


@bp.get("/latest")
@login_required
def latest():
    return render_template("notifications/_latest.html", rows=services.latest(current_user.id), message=message)


@bp.get("/<uuid:notification_id>/open")
@login_required
def open_(notification_id: UUID):
    """Follow a notification's link: opening it is reading it (the bell counts one fewer)."""
    row = services.mark_read(current_user.id, notification_id)
    if row is None:
        abort(404)
    return redirect(safe_next(row.link) or url_for(".index"), 303)


@bp.post("/<uuid:notification_id>/read")
@login_required
def read(notification_id: UUID):
    row = services.mark_read(current_user.id, notification_id)
    if row is None:
        abort(404)
    if _htmx():
        # The row comes back read; the bell listens for notifications-changed and counts again.
        response = make_response(render_template("notifications/_row.html", n=row, message=message))
        return toast(trigger(response, "notifications-changed"), "Marked as read.")
    target = safe_next(request.form.get("next")) if request.form.get("next") else None
    return redirect(target or url_for(".index"), 303)


@bp.post("/read-all")
@login_required
def read_all():
    marked = services.mark_all_read(current_user.id)
    text = f"{plural(marked, 'notification')} marked as read." if marked else "Nothing was unread."
    if _htmx():
        rows, older = services.page(current_user.id)
        response = make_response(render_template("notifications/_list.html", rows=rows, older=older,
                                                 message=message, first=True))
        return toast(trigger(response, "notifications-changed"), text)
    flash(text, "success")
    return redirect(url_for(".index"), 303)


@bp.post("/preferences")
@login_required
def preferences():
    form = preferences_form(services.preferences(current_user.id), request.form)
    if not form.validate():
        flash("Choose one of the offered options for each kind of notification.", "error")
        return redirect(url_for("profile.notifications"), 303)
    changed = services.set_preferences(current_user.id, chosen(form))
    if changed:
        events.security("notifications.preferences", current_user, changed=changed)
    flash("Notification preferences saved." if changed else "Nothing changed.", "success")
    return redirect(url_for("profile.notifications"), 303)


# RFC 8058: mail clients POST "List-Unsubscribe=One-Click" to the List-Unsubscribe URL with no
# cookies and no CSRF token. The signed token (user and kind) authenticates the request, and all
# it can do is stop one kind of email for that one user, so CSRF protection adds nothing here.
@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(token: str):
    found = services.read_unsubscribe_token(token)
    if found is None:
        return render_template("notifications/unsubscribe.html", invalid=True), 404
    user_id, what = found
    what_label = DIGEST_LABEL if what == services.DIGEST else label(what)
    if request.method == "GET":  # mail scanners prefetch links: GET only asks
        return render_template("notifications/unsubscribe.html", token=token, what=what_label)
    with user_scope(db.session, user_id):  # the token's user, for the preferences' RLS
        changed = services.unsubscribe(user_id, what)
        user = db.session.get(User, user_id)
        if changed and user is not None:
            events.security("notifications.unsubscribe", user, changed=changed)
    return render_template("notifications/unsubscribe.html", done=True, what=what_label)
