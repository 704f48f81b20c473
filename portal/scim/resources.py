"""Between the portal's rows and the SCIM resources of scim2-models (RFC 7643): what a request
body means for the services, and what a row looks like as a resource. No parsing by hand: the
library validates bodies, filters and patches; this module maps."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from scim2_models import (Context, EnterpriseUser, Group, Meta, ResourceType, Schema, ServiceProviderConfig, User)

from ..accounts.services import normalise_email
from .errors import ScimError

UserResource = User[EnterpriseUser]
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
MAX_RESULTS = 200  # a list page's largest count (ServiceProviderConfig.filter.maxResults)
MAX_EMAILS = 20
# Kept in columns or derived from the portal, never in `attributes` (the rest of what was sent).
_COLUMNS = {"schemas", "id", "meta", "userName", "externalId", "displayName", "active", "groups", "password"}


def base_url() -> str:
    return current_app.config["BASE_URL"].rstrip("/") + "/scim/v2"


def etag(version: int, suffix: str = "") -> str:
    return f'W/"{version}{suffix}"'


@dataclass
class UserData:
    """A User as the services take it (from POST, PUT, or a patched copy of the resource)."""
    user_name: str
    external_id: str | None
    display_name: str | None
    active: bool
    email: str  # the account's address: the primary email, else the first, else userName
    emails: list[str]
    name: str  # the person's name for the portal account
    attributes: dict[str, Any] = field(default_factory=dict)


def _valid_email(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return normalise_email(validate_email(str(value).strip(), check_deliverability=False).normalized)
    except EmailNotValidError:
        return None


def user_data(user: UserResource) -> UserData:
    user_name = " ".join((user.user_name or "").split())
    if not user_name or len(user_name) > 320:
        raise ScimError(400, "userName is required, at most 320 characters.", "invalidValue")
    emails = [e for e in (user.emails or []) if e.value]
    if len(emails) > MAX_EMAILS or any(len(str(e.value)) > 320 for e in emails):
        raise ScimError(400, f"Give at most {MAX_EMAILS} emails of at most 320 characters each.", "invalidValue")
    ordered = sorted(emails, key=lambda e: not e.primary)  # the primary one first, then as sent
    email = next((found for e in ordered if (found := _valid_email(e.value))), None) or _valid_email(user_name)
    if email is None:
        raise ScimError(400, "Give the person an email address: userName as an address, or an entry in emails.",
                        "invalidValue")
    dumped = user.model_dump(scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    attributes = {k: v for k, v in dumped.items() if k not in _COLUMNS}
    name = user.name
    person = (user.display_name or (name.formatted if name else None)
              or " ".join(p for p in ((name.given_name, name.family_name) if name else ()) if p) or "")
    external_id = (user.external_id or None)
    if external_id is not None and len(external_id) > 255:
        raise ScimError(400, "externalId has at most 255 characters.", "invalidValue")
    display = (user.display_name or "").strip()[:200] or None
    return UserData(user_name, external_id, display, user.active is not False, email,
                    sorted({v for e in emails if (v := str(e.value).strip().lower())}), " ".join(person.split())[:200],
                    attributes)


def user_resource(row, active: bool, groups: list[tuple[Any, str]]) -> UserResource:
    values = dict(row.attributes or {})
    values.update({
        "schemas": [USER_SCHEMA] + [k for k in values if k.startswith("urn:")],
        "id": str(row.id), "userName": row.user_name, "externalId": row.external_id,
        "displayName": row.display_name, "active": active,
        "groups": [{"value": str(gid), "display": name, "$ref": f"{base_url()}/Groups/{gid}"} for gid, name in groups]
        or None,
    })
    user = UserResource.model_validate({k: v for k, v in values.items() if v is not None})
    user.meta = Meta(resource_type="User", created=row.created_at, last_modified=row.updated_at,
                     location=f"{base_url()}/Users/{row.id}",
                     # A suspension on the members page changes the resource too, not the row.
                     version=etag(row.version, "" if active else "s"))
    return user


@dataclass
class GroupData:
    display_name: str
    external_id: str | None
    member_ids: list[str]


def group_data(group: Group) -> GroupData:
    display = " ".join((group.display_name or "").split())
    if not display or len(display) > 255:
        raise ScimError(400, "displayName is required, at most 255 characters.", "invalidValue")
    if group.external_id is not None and len(group.external_id) > 255:
        raise ScimError(400, "externalId has at most 255 characters.", "invalidValue")
    return GroupData(display, group.external_id or None,
                     list(dict.fromkeys(str(m.value) for m in (group.members or []) if m.value)))


def group_resource(row, members: list[tuple[Any, str]]) -> Group:
    group = Group.model_validate({k: v for k, v in {
        "schemas": [GROUP_SCHEMA], "id": str(row.id), "displayName": row.display_name, "externalId": row.external_id,
        "members": [{"value": str(uid), "display": name, "type": "User", "$ref": f"{base_url()}/Users/{uid}"}
                    for uid, name in members] or None}.items() if v is not None})
    group.meta = Meta(resource_type="Group", created=row.created_at, last_modified=row.updated_at,
                      location=f"{base_url()}/Groups/{row.id}", version=etag(row.version))
    return group


def service_provider_config() -> ServiceProviderConfig:
    return ServiceProviderConfig.model_validate({
        "documentationUri": f"{current_app.config['BASE_URL']}/docs/api#scim",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": True},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "SCIM token",
            "description": "A bearer token an owner creates in the organization's settings (Provisioning).",
            "primary": True}],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base_url()}/ServiceProviderConfig"},
    })


def resource_types() -> list[ResourceType]:
    out = []
    for model, name in ((UserResource, "User"), (Group, "Group")):
        rt = ResourceType.from_resource(model)
        rt.id, rt.name = name, name
        rt.meta = Meta(resource_type="ResourceType", location=f"{base_url()}/ResourceTypes/{name}")
        out.append(rt)
    return out


def schemas() -> list[Schema]:
    out = []
    for model in (User, EnterpriseUser, Group):
        schema = model.to_schema()
        schema.meta = Meta(resource_type="Schema", location=f"{base_url()}/Schemas/{schema.id}")
        out.append(schema)
    return out
