"""Password reset: /password/forgot answers the same whether or not the account exists;
/password/reset/<token> shows a form (GET consumes nothing) and POST sets the password."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for

from ..extensions import db, limiter
from ..rules import RuleViolation
from ..security import services, tokens
from ..security.forms import NewPasswordForm
from ..security.models import TokenPurpose
from .forms import ForgotForm

bp = Blueprint("accounts_reset", __name__, url_prefix="/password")
SENT = ("If an account uses that address, we sent it a link to reset the password. "
        "The link works once, for one hour.")


@bp.after_request
def _private(response):
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/forgot", methods=["GET", "POST"])
@limiter.limit("10 per 15 minutes", methods=["POST"])
def forgot():
    form = ForgotForm()
    if form.validate_on_submit():
        services.request_password_reset(form.email.data)
        flash(SENT, "info")
        return redirect(url_for("accounts.login"), 303)
    return render_template("accounts/forgot.html", form=form), 400 if form.errors else 200


@bp.route("/reset/<token>", methods=["GET", "POST"])
@limiter.limit("20 per 15 minutes", methods=["POST"])
def reset(token: str):
    if tokens.find(token, TokenPurpose.RESET_PASSWORD) is None:
        return render_template("accounts/reset_invalid.html"), 410
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            services.reset_password(token, form.password.data)
        except RuleViolation as exc:
            db.session.rollback()
            form.password.errors.append(exc.message)
        else:
            flash("Your password is changed and every session was signed out. Sign in with the new password.",
                  "success")
            return redirect(url_for("accounts.login"), 303)
        return render_template("accounts/reset.html", form=form), 422
    return render_template("accounts/reset.html", form=form), 400 if form.errors else 200
