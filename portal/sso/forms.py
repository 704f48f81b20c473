from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, RadioField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, Optional

from ..oneline import SingleLine


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class ConnectionForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100), SingleLine()], filters=[_strip],
                       description="What members see, e.g. “Acme Keycloak”.")
    kind = RadioField("Provider", choices=[("oidc", "Any OpenID Connect provider (issuer URL)"),
                                           ("keycloak", "Keycloak (base URL and realm)")], default="oidc")
    issuer = StringField("Issuer URL", validators=[Optional(), Length(max=500), SingleLine()], filters=[_strip],
                         description="The provider's issuer; its discovery document is read from "
                                     "<issuer>/.well-known/openid-configuration.")
    keycloak_url = StringField("Keycloak base URL", validators=[Optional(), Length(max=400), SingleLine()],
                               filters=[_strip], description="e.g. https://sso.example.com")
    realm = StringField("Realm", validators=[Optional(), Length(max=100), SingleLine()], filters=[_strip])
    client_id = StringField("Client ID", validators=[DataRequired(), Length(max=255), SingleLine()], filters=[_strip])
    client_secret = PasswordField("Client secret", validators=[Optional(), Length(max=1000)],
                                  render_kw={"autocomplete": "new-password"},
                                  description="Stored encrypted and never shown again. Leave empty for a public "
                                              "client (PKCE only), or to keep the stored one when editing.")
    default_role = SelectField("Role of people who join by signing in", choices=[], validate_choice=False)
    invitations_only = BooleanField("Invitations only: nobody joins by signing in")
    owner_by_mapping = BooleanField("Group mappings may make owners (owners only)")

    def issuer_url(self) -> str:
        from .provider import keycloak_issuer
        if self.kind.data == "keycloak":
            return keycloak_issuer(self.keycloak_url.data or "", self.realm.data or "") \
                if self.keycloak_url.data and self.realm.data else ""
        return (self.issuer.data or "").rstrip("/")

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        # Which fields are required depends on the kind (Optional() would skip inline validators).
        if self.kind.data == "keycloak" and not (self.realm.data and self.keycloak_url.data):
            self.realm.errors = [*self.realm.errors, "Enter Keycloak's base URL and the realm."]
            ok = False
        elif self.kind.data != "keycloak" and not self.issuer.data:
            self.issuer.errors = [*self.issuer.errors, "Enter the issuer URL."]
            ok = False
        return ok


class MappingForm(FlaskForm):
    group = StringField("Provider group", validators=[DataRequired(), Length(max=500), SingleLine()],
                        filters=[_strip], description="As the groups claim sends it, e.g. /acme/technicians.")
    external_id = StringField("Group ID at the provider (optional)", validators=[Optional(), Length(max=255),
                                                                                 SingleLine()], filters=[_strip])
    role = SelectField("Role", choices=[], validate_choice=False)
    sites = SelectMultipleField("Sites (optional)", coerce=str, validate_choice=False)


class DomainForm(FlaskForm):
    domain = StringField("Domain", validators=[DataRequired(), Length(max=253), SingleLine()], filters=[_strip],
                         description="e.g. example.com: people whose email ends in @example.com.")
