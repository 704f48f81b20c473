"""/scim/v2 (RFC 7644): Users, Groups and the discovery endpoints, for an identity provider
holding one of the organization's SCIM tokens. Views parse with scim2-models, call one service
and answer with the resource; the request edge commits once (portal/web.py), and any error
rolls the whole request back."""
from __future__ import annotations

from flask import Blueprint, Response, json, request
from pydantic import ValidationError
from scim2_models import Context, Group, PatchOp, ResponseParameters, SCIMException, SearchRequest

from ..jsondata import JsonValueError, parse_object
from ..tenancy import current
from . import auth, groups, queries, resources, services
from .errors import MEDIA_TYPE, ScimError
from .resources import MAX_RESULTS, UserResource

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
MAX_BODY = 1024 * 1024  # a group of a few thousand members; a person is a few hundred bytes


@bp.before_request
def _enter():
    auth.enter()


def _answer(payload: dict, status: int = 200, etag: str | None = None, location: str | None = None) -> Response:
    response = Response(json.dumps(payload), status=status, mimetype=MEDIA_TYPE)
    response.headers["Cache-Control"] = "no-store"
    if etag:
        response.headers["ETag"] = etag
    if location:
        response.headers["Location"] = location
    return response


def _body() -> dict:
    if (request.content_length or 0) > MAX_BODY:
        raise ScimError(413, f"The body is larger than {MAX_BODY // 1024} KiB.")
    if not request.mimetype or not (request.mimetype == "application/json" or request.mimetype.endswith("+json")):
        raise ScimError(400, "Send the body as application/scim+json.", "invalidSyntax")
    try:
        return parse_object(request.get_data())
    except JsonValueError as exc:
        raise ScimError(400, f"The body is not a JSON object the portal accepts: it {exc}.", "invalidSyntax") from None


def _validate(model, payload: dict, ctx: Context):
    try:
        return model.model_validate(payload, scim_ctx=ctx)
    except (ValidationError, SCIMException) as exc:
        raise ScimError.of(exc) from None


def _parameters(model):
    """attributes / excludedAttributes of a GET (RFC 7644 §3.9)."""
    values = {k: request.args[k] for k in ("attributes", "excludedAttributes") if request.args.get(k)}
    return _validate(ResponseParameters[model], values, Context.SEARCH_REQUEST) if values else None


def _dump(resource, parameters=None, ctx: Context = Context.RESOURCE_QUERY_RESPONSE) -> dict:
    return resource.model_dump(scim_ctx=ctx, response_parameters=parameters)


def _check_version(current_etag: str) -> None:
    """If-Match on a change: the provider's copy must be the current one (412 otherwise)."""
    wanted = request.headers.get("If-Match")
    if wanted and wanted.strip() != "*" and current_etag not in [v.strip() for v in wanted.split(",")]:
        raise ScimError(412, "The resource has changed since it was read: read it again.")


def _not_modified(current_etag: str) -> bool:
    wanted = request.headers.get("If-None-Match")
    return bool(wanted) and current_etag in [v.strip() for v in wanted.split(",")]


def _search(model):
    search = _validate(SearchRequest[model], {k: v for k, v in request.args.items()
                                              if k in ("filter", "startIndex", "count", "attributes",
                                                       "excludedAttributes", "sortBy", "sortOrder")},
                       Context.SEARCH_REQUEST)
    if search.sort_by is not None:
        raise ScimError(400, "Sorting is not supported (ServiceProviderConfig.sort).", "invalidValue")
    count = MAX_RESULTS if search.count is None else max(0, min(search.count, MAX_RESULTS))
    return search, max(1, search.start_index or 1), count


def _list(resources_: list[dict], total: int, start: int) -> Response:
    return _answer({"schemas": [LIST_SCHEMA], "totalResults": total, "startIndex": start,
                    "itemsPerPage": len(resources_), "Resources": resources_})


# --- Discovery ----------------------------------------------------------------------------

@bp.get("/ServiceProviderConfig")
def service_provider_config():
    return _answer(_dump(resources.service_provider_config()))


@bp.get("/ResourceTypes")
def resource_types():
    found = [_dump(r) for r in resources.resource_types()]
    return _list(found, len(found), 1)


@bp.get("/ResourceTypes/<name>")
def resource_type(name: str):
    found = next((r for r in resources.resource_types() if r.id == name), None)
    if found is None:
        raise ScimError(404, f"No resource type {name}.")
    return _answer(_dump(found))


@bp.get("/Schemas")
def schemas():
    found = [_dump(s) for s in resources.schemas()]
    return _list(found, len(found), 1)


@bp.get("/Schemas/<path:schema_id>")
def schema(schema_id: str):
    found = next((s for s in resources.schemas() if s.id == schema_id), None)
    if found is None:
        raise ScimError(404, f"No schema {schema_id}.")
    return _answer(_dump(found))


# --- Users --------------------------------------------------------------------------------

def _user_or_404(scim_id: str):
    found = services.get_user(current(), scim_id)
    if found is None:
        raise ScimError(404, f"No user {scim_id} here.")
    return found


def _user(row, membership) -> UserResource:
    ctx = current()
    groups_ = queries.groups_of(ctx.tenant_id, [row.id]).get(row.id, [])
    return resources.user_resource(row, membership.status.value == "active", groups_)


@bp.get("/Users")
def list_users():
    search, start, count = _search(UserResource)
    condition = queries.UserFilter().visit(search.filter.ast) if search.filter else None
    ctx = current()
    total, page = queries.users_page(ctx.tenant_id, condition, start, count)
    of = queries.groups_of(ctx.tenant_id, [row.id for row, _ in page])
    parameters = ResponseParameters[UserResource](attributes=search.attributes,
                                                  excluded_attributes=search.excluded_attributes) \
        if search.attributes or search.excluded_attributes else None
    found = [_dump(resources.user_resource(row, status.value == "active", of.get(row.id, [])), parameters)
             for row, status in page]
    return _list(found, total, start)


@bp.post("/Users")
def create_user():
    user = _validate(UserResource, _body(), Context.RESOURCE_CREATION_REQUEST)
    row = services.create_user(current(), resources.user_data(user))
    resource = _user(*services.get_user(current(), str(row.id)))
    return _answer(_dump(resource, ctx=Context.RESOURCE_CREATION_RESPONSE), 201, resource.meta.version,
                   resource.meta.location)


@bp.get("/Users/<scim_id>")
def get_user(scim_id: str):
    resource = _user(*_user_or_404(scim_id))
    if _not_modified(resource.meta.version):
        return Response(status=304, headers={"ETag": resource.meta.version})
    return _answer(_dump(resource, _parameters(UserResource)), etag=resource.meta.version)


@bp.put("/Users/<scim_id>")
def replace_user(scim_id: str):
    row, membership = _user_or_404(scim_id)
    _check_version(_user(row, membership).meta.version)
    user = _validate(UserResource, _body(), Context.RESOURCE_REPLACEMENT_REQUEST)
    services.replace_user(current(), row, membership, resources.user_data(user))
    return _changed_user(scim_id, Context.RESOURCE_REPLACEMENT_RESPONSE)


@bp.patch("/Users/<scim_id>")
def patch_user(scim_id: str):
    row, membership = _user_or_404(scim_id)
    resource = _user(row, membership)
    _check_version(resource.meta.version)
    patch = _validate(PatchOp[UserResource], _body(), Context.RESOURCE_PATCH_REQUEST)
    try:
        patch.patch(resource)  # the library applies RFC 7644 §3.5.2 to a copy; the service stores the result
    except (ValidationError, SCIMException) as exc:
        raise ScimError.of(exc) from None
    services.replace_user(current(), row, membership, resources.user_data(resource))
    return _changed_user(scim_id, Context.RESOURCE_PATCH_RESPONSE)


def _changed_user(scim_id: str, ctx: Context) -> Response:
    resource = _user(*services.get_user(current(), scim_id))
    return _answer(_dump(resource, ctx=ctx), etag=resource.meta.version)


@bp.delete("/Users/<scim_id>")
def delete_user(scim_id: str):
    row, membership = _user_or_404(scim_id)
    _check_version(_user(row, membership).meta.version)
    services.delete_user(current(), row, membership)
    return Response(status=204)


# --- Groups -------------------------------------------------------------------------------

def _group_or_404(group_id: str):
    found = groups.get_group(current(), group_id)
    if found is None:
        raise ScimError(404, f"No group {group_id} here.")
    return found


def _group(row) -> Group:
    return resources.group_resource(row, queries.members_of(current().tenant_id, [row.id]).get(row.id, []))


@bp.get("/Groups")
def list_groups():
    search, start, count = _search(Group)
    condition = queries.GroupFilter().visit(search.filter.ast) if search.filter else None
    ctx = current()
    total, page = queries.groups_page(ctx.tenant_id, condition, start, count)
    of = queries.members_of(ctx.tenant_id, [g.id for g in page])
    parameters = ResponseParameters[Group](attributes=search.attributes,
                                           excluded_attributes=search.excluded_attributes) \
        if search.attributes or search.excluded_attributes else None
    return _list([_dump(resources.group_resource(g, of.get(g.id, [])), parameters) for g in page], total, start)


@bp.post("/Groups")
def create_group():
    group = _validate(Group, _body(), Context.RESOURCE_CREATION_REQUEST)
    row = groups.create_group(current(), resources.group_data(group))
    resource = _group(row)
    return _answer(_dump(resource, ctx=Context.RESOURCE_CREATION_RESPONSE), 201, resource.meta.version,
                   resource.meta.location)


@bp.get("/Groups/<group_id>")
def get_group(group_id: str):
    resource = _group(_group_or_404(group_id))
    if _not_modified(resource.meta.version):
        return Response(status=304, headers={"ETag": resource.meta.version})
    return _answer(_dump(resource, _parameters(Group)), etag=resource.meta.version)


@bp.put("/Groups/<group_id>")
def replace_group(group_id: str):
    row = _group_or_404(group_id)
    _check_version(_group(row).meta.version)
    group = _validate(Group, _body(), Context.RESOURCE_REPLACEMENT_REQUEST)
    groups.replace_group(current(), row, resources.group_data(group))
    resource = _group(row)
    return _answer(_dump(resource, ctx=Context.RESOURCE_REPLACEMENT_RESPONSE), etag=resource.meta.version)


@bp.patch("/Groups/<group_id>")
def patch_group(group_id: str):
    row = _group_or_404(group_id)
    resource = _group(row)
    _check_version(resource.meta.version)
    patch = _validate(PatchOp[Group], _body(), Context.RESOURCE_PATCH_REQUEST)
    try:
        patch.patch(resource)
    except (ValidationError, SCIMException) as exc:
        raise ScimError.of(exc) from None
    groups.replace_group(current(), row, resources.group_data(resource))
    resource = _group(row)
    return _answer(_dump(resource, ctx=Context.RESOURCE_PATCH_RESPONSE), etag=resource.meta.version)


@bp.delete("/Groups/<group_id>")
def delete_group(group_id: str):
    row = _group_or_404(group_id)
    _check_version(_group(row).meta.version)
    groups.delete_group(current(), row)
    return Response(status=204)
