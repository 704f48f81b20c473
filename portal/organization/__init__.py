"""/t/<slug>/settings: the organization's own settings, for holders of `tenant:manage`
(owners by default): name and contact, the security policy, and usage against the plan."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .brand_views import bp as branding_bp
    from .branding import branding
    from .onboarding import checklist
    from .views import SECTIONS, bp
    app.register_blueprint(bp)
    # Sections other areas render (portal/sso's "Single sign-on") read the nav from here, so
    # they need not import this area.
    app.extensions["settings_sections"] = SECTIONS
    app.register_blueprint(branding_bp)
    app.jinja_env.globals["onboarding_checklist"] = checklist
    app.jinja_env.globals["tenant_branding"] = branding
