"""GET/POST /oauth/authorize: a person lets an app act for them in the app's organization;
/account/connected-apps: the apps they let in, per organization, each revocable.

Apps are bound to the tenant that registered them, so there is no organization to pick: the
page checks that the person is an active member there (the same entry as any tenant page,
with the tenant's own sign-in policy) and names the organization on the consent page.
"""
from __future__ import annotations

from urllib.parse import urlsplit
from uuid import UUID

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import ui
from ..api import grants
from ..api.oauth import Person, server
from ..extensions import db
from ..profile.views import SECTIONS
from ..tenancy import Permission, TenantContext, entry_checks
from ..tenancy.queries import enter_tenant
from ..web import CSP

bp = Blueprint("connected_apps", __name__)


def _scope_words(scopes: list[str], ctx: TenantContext | None) -> list[dict]:
    """Each scope in words, and whether the person's role allows it (a token never does more
    than the person may, at each request)."""
    out = []
    for value in scopes:
        try:
            p = Permission(value)
        except ValueError:
            continue
        out.append({"value": value, "category": p.category, "words": p.description,
                    "held": ctx is None or ctx.can(p)})
    return out


def _back(redirect_uri: str, state: str | None, error: str = "access_denied") -> str:
    return add_params_to_uri(redirect_uri, [("error", error)] + ([("state", state)] if state else []))


def _with_form_action(response, redirect_uri: str):
    """The consent form's answer is a redirect to the app: the page's CSP must allow it."""
    parts = urlsplit(redirect_uri)
    response.headers["Content-Security-Policy"] = CSP.replace(
        "form-action 'self'", f"form-action 'self' {parts.scheme}://{parts.netloc}")
    response.headers["Cache-Control"] = "no-store"
    return response


def _see_other(response):
    if request.method == "POST" and response.status_code == 302:
        response.status_code = 303  # POST-redirect-GET, as every form here
    return response


@bp.route("/oauth/authorize", methods=["GET", "POST"])
def authorize():
    if not current_user.is_authenticated:
        # Signed in, the person comes back to this very request.
        return redirect(url_for("accounts.login", next=request.full_path), 303 if request.method == "POST" else 302)
    try:
        grant = server.get_consent_grant(end_user=current_user)
    except OAuth2Error as error:
        if error.redirect_uri:  # the redirect URI is the app's own: the app is told (RFC 6749 4.1.2.1)
            return _see_other(server.handle_error_response(None, error))
        # Never redirect to an address the app has not registered: the person is told instead.
        return render_template("connected_apps/invalid.html", message=error.get_error_description()
                               or error.error), 400
    app = grant.client.app()
    redirect_uri = grant.redirect_uri
    state = grant.request.payload.state
    scopes = (grant.request.scope or "").split()
    entry = enter_tenant(app.t_slug, current_user.id)
    ctx = None
    # An archived organization changes nothing, consents included.
    if entry is not None and entry[0].is_readable and not entry[0].is_read_only:
        ctx = TenantContext(entry[0], entry[1], entry[2], None)
        for check in entry_checks:  # the organization's own sign-in policy (two-factor, networks)
            refused = check(ctx)
            if refused is not None:
                return refused
    if ctx is None:
        response = ui.no_store(render_template("connected_apps/not_member.html", app_name=app.c_name,
                                               tenant_name=app.t_name, back=_back(redirect_uri, state)))
        response.status_code = 403
        return response
    if request.method == "POST":
        if request.form.get("decision") == "allow":
            # The code is saved under this grant (api.oauth.AuthorizationCodeGrant.save_authorization_code).
            g.oauth_consented = grants.consent(ctx, app.c_id, app.c_name, scopes)
            response = server.create_authorization_response(grant_user=Person(current_user.id), grant=grant)
        else:
            response = server.create_authorization_response(grant_user=None, grant=grant)
        return _see_other(response)
    page = render_template("connected_apps/authorize.html", app=app, tenant=ctx.tenant, scopes=_scope_words(scopes, ctx),
                           redirect_host=urlsplit(redirect_uri).netloc, public=app.c_is_public)
    return _with_form_action(ui.no_store(page), redirect_uri)


@bp.get("/account/connected-apps")
@login_required
def connected_apps():
    mine = grants.my_grants()
    by_tenant: dict[UUID, dict] = {}
    for grant in mine:
        entry = by_tenant.setdefault(grant.tenant_id, {"name": grant.tenant_name, "slug": grant.tenant_slug, "grants": []})
        entry["grants"].append({"grant": grant, "scopes": _scope_words(grant.scopes, None)})
    return render_template("connected_apps/account.html", sections=SECTIONS, section="connected_apps.connected_apps",
                           tenants=list(by_tenant.values()))


@bp.post("/account/connected-apps/<uuid:grant_id>/revoke")
@login_required
def revoke(grant_id: UUID):
    mine = next((m for m in grants.my_grants() if m.id == grant_id), None)
    if mine is None:
        flash("That app had already lost its access.", "info")
        return redirect(url_for(".connected_apps"), 303)
    entry = enter_tenant(mine.tenant_slug, current_user.id)
    if entry is not None and entry[0].is_readable:
        grant = grants.get_grant(mine.tenant_id, grant_id, for_update=True)
        if grant is not None:
            grants.revoke_grant(mine.tenant_id, current_user.id, grant, "person")
    else:  # no longer a member there: its tokens are dead already; the grant ends with the rest
        grants.revoke_grants(current_user.id, tenant_id=mine.tenant_id, reason="person", actor_id=current_user.id)
    db.session.flush()
    flash(f"{mine.app_name} can no longer act for you in {mine.tenant_name}.", "success")
    return redirect(url_for(".connected_apps"), 303)
