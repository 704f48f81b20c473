from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from ..database.context import set_context
from ..extensions import db
from .forms import LoginForm
from .services import authenticate, landing_tenant_slug

bp = Blueprint("accounts", __name__)
GENERIC_FAILURE = "That email and password do not match an account."


def _safe_next(target: str | None) -> str | None:
    """Only same-site paths: never redirect to another host after sign-in."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def home_for(user) -> str:
    slug = landing_tenant_slug(user)
    if slug:
        return url_for("dashboard.index", tenant_slug=slug)
    if user.is_system_admin:
        return url_for("admin.tenants")
    return url_for("switcher.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")) or home_for(current_user), 303)
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data)
        if user is not None:
            login_user(user)
            set_context(db.session, user_id=user.id)
            return redirect(_safe_next(request.args.get("next")) or home_for(user), 303)
        form.password.errors.append(GENERIC_FAILURE)
        return render_template("accounts/login.html", form=form), 401
    return render_template("accounts/login.html", form=form), 400 if form.errors else 200


@bp.post("/logout")
def logout():
    logout_user()
    flash("You are signed out.", "info")
    # "Sign out and continue" from an invitation for another address comes back to it.
    return redirect(url_for("accounts.login", next=_safe_next(request.form.get("next"))), 303)


@bp.get("/")
def root():
    if current_user.is_authenticated:
        return redirect(home_for(current_user), 303)
    return redirect(url_for("accounts.login"), 303)
