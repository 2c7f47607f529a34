"""Azure Resource Manager: routing, authorization and request validation, then the resource provider.

Every request goes through what ARM does before a resource provider sees it:

1. ``api-version`` is required (400 ``MissingApiVersionParameter``);
2. the route must be one the fake implements, else 501 ``NotImplemented`` naming the method and
   path (never a 404 a client could read as "not found");
3. the caller (the token's ``oid``) needs the route's action at its scope through a role assignment
   that has propagated (:mod:`.rbac`), else 403 ``AuthorizationFailed`` in ARM's words
   (https://learn.microsoft.com/azure/role-based-access-control/troubleshooting#symptom---authorization-failed):
   ``*/read`` for every GET, ``{provider}/{type}/write`` for PUT/PATCH, ``.../delete`` for DELETE,
   ``Microsoft.Authorization/roleAssignments/write|delete`` for role assignments
   (https://learn.microsoft.com/azure/role-based-access-control/role-assignments-rest#prerequisites);
4. PUT/PATCH bodies are validated with the SDK's models (:mod:`.validation`): 400
   ``InvalidRequestContent``.

Polling a long-running operation's ``Azure-AsyncOperation`` URL needs no role: it is the URL ARM
handed the caller of the operation (https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations).

Resource groups (GET) are answered here; each provider type has its own module.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import typing as t

from . import identities, managed_clusters, rbac, role_assignments, validation, vaults
from .common import Answer, HttpError

if t.TYPE_CHECKING:
    from .server import FakeAzure


class Headers(t.Protocol):
    def get(self, name: str, default: t.Any = None, /) -> t.Any: ...


def claims_of(headers: Headers | None) -> dict[str, t.Any]:
    """The claims of the request's bearer token (the login module has already checked it)."""
    header = str((headers.get("Authorization") if headers is not None else "") or "")
    try:
        payload = header.split(" ", 1)[1].split(".")[1]
        found = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def authorize(fake: FakeAzure, claims: dict[str, t.Any], action: str, scope: str) -> None:
    caller = str(claims.get("oid") or fake.deployer_object_id)
    if rbac.has_action(fake, caller, action, scope, data=False):
        return
    client = claims.get("upn") or caller
    raise HttpError(
        403,
        "AuthorizationFailed",
        f"The client '{client}' with object id '{caller}' does not have authorization to perform action "
        f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please "
        "refresh your credentials.",
    )


class Route(t.NamedTuple):
    action: str | None  # None: no role needed
    scope: str
    serve: t.Callable[[], Answer]
    model: bool = False  # the body is validated (PUT/PATCH)
    check: t.Callable[[], None] | None = None  # what ARM checks before the provider (the resource group)


_VERB = {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}
_RA = r"/providers/microsoft\.authorization/roleassignments"
_RD = r"/providers/microsoft\.authorization/roledefinitions"


def _route(
    fake: FakeAzure, method: str, path: str, query: dict[str, str], body: t.Any, headers: Headers | None
) -> Route | None:
    lower = path.lower()
    sub = f"/subscriptions/{fake.subscription_id}"
    verb = _VERB.get(method)
    m = re.fullmatch(re.escape(sub) + r"/resourcegroups/([^/]+)", lower)
    if m and method == "GET":
        group_name = m.group(1)
        return Route(
            "Microsoft.Resources/subscriptions/resourceGroups/read", path, lambda: _resource_group(fake, group_name)
        )
    m = re.fullmatch(
        re.escape(sub) + r"/providers/microsoft\.containerservice/locations/[^/]+/operations/([^/]+)", lower
    )
    if m and method == "GET":
        operation = path.rsplit("/", 1)[-1]
        return Route(None, path, lambda: managed_clusters.operation_status(fake, operation))
    m = re.fullmatch(r"(.*)" + _RA, lower)
    if m and method == "GET":
        scope = path[: len(m.group(1))]
        return Route(
            "Microsoft.Authorization/roleAssignments/read",
            scope or "/",
            lambda: role_assignments.list_for_scope(fake, scope, query.get("$filter", "")),
        )
    m = re.fullmatch(r"(.*)" + _RA + r"/([^/]+)", lower)
    if m and method in ("GET", "PUT", "DELETE"):
        scope = path[: len(m.group(1))]
        return Route(
            f"Microsoft.Authorization/roleAssignments/{verb}",
            scope or "/",
            lambda: role_assignments.handle(fake, method, path, body, str(claims_of(headers).get("oid") or "")),
            model=method == "PUT",
        )
    m = re.fullmatch(r"(.*)" + _RD + r"(/[^/]+)?", lower)
    if m and method == "GET":
        scope = path[: len(m.group(1))]
        return Route(
            "Microsoft.Authorization/roleDefinitions/read",
            scope or "/",
            lambda: role_assignments.role_definitions(fake, path, query.get("$filter", "")),
        )
    m = re.fullmatch(re.escape(sub) + r"/resourcegroups/([^/]+)/providers/([^/]+)/([^/]+)/([^/]+)(/.*)?", lower)
    if not m or verb is None:
        return None
    group, namespace, kind, child = m.group(1), m.group(2), m.group(3), m.group(5) or ""
    segments = path.split("/")
    provider_type = f"{segments[6]}/{segments[7]}"  # the namespace and type as the client spelled them
    serve: t.Callable[[], Answer] | None = None
    action = f"{provider_type}/{verb}"
    if namespace == "microsoft.keyvault" and kind == "vaults":
        if not child and method in ("GET", "PUT"):
            serve = functools.partial(vaults.handle, fake, method, path, body)
        elif re.fullmatch(r"/accesspolicies/(add|replace|remove)", child) and method == "PUT":
            action = f"{provider_type}/accessPolicies/write"
            serve = functools.partial(vaults.access_policies, fake, path, body)
    elif namespace == "microsoft.containerservice" and kind == "managedclusters":
        if not child and method in ("GET", "PUT"):
            serve = functools.partial(managed_clusters.handle, fake, method, path, body, headers)
    elif namespace == "microsoft.managedidentity" and kind == "userassignedidentities":
        if child and re.fullmatch(r"/federatedidentitycredentials/[^/]+", child) and method in ("GET", "PUT"):
            action = f"{provider_type}/federatedIdentityCredentials/{verb}"
            serve = functools.partial(identities.handle, fake, method, path, body, child)
        elif not child and method in ("GET", "PUT"):
            serve = functools.partial(identities.handle, fake, method, path, body, "")
    if serve is None:
        return None

    def in_group() -> None:
        if group not in fake.resource_groups:
            raise HttpError(404, "ResourceGroupNotFound", f"Resource group '{segments[4]}' could not be found.")

    return Route(action, path, serve, model=method in ("PUT", "PATCH"), check=in_group)


def _resource_group(fake: FakeAzure, name: str) -> Answer:
    resource_group = fake.resource_groups.get(name)
    if resource_group:
        return Answer(200, resource_group)
    raise HttpError(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")


def handle(
    fake: FakeAzure, method: str, path: str, query: dict[str, str], body: t.Any, headers: Headers | None = None
) -> Answer:
    """Answer an ARM request. ``headers`` carries the bearer token (the caller) and ``If-Match``;
    without them the caller is the deployer."""
    if "api-version" not in query:
        raise HttpError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    path = path.rstrip("/")
    sub = f"/subscriptions/{fake.subscription_id}"
    if not path.lower().startswith(sub):
        found = path.split("/")[2] if path.lower().startswith("/subscriptions/") else path
        raise HttpError(404, "SubscriptionNotFound", f"The subscription '{found}' could not be found.")
    route = _route(fake, method, path, query, body, headers)
    if route is None:
        raise HttpError(501, "NotImplemented", f"The fake Azure does not implement {method} {path}")
    if route.action:
        authorize(fake, claims_of(headers), route.action, route.scope)
    if route.check:
        route.check()
    if route.model:
        problems = validation.validate_arm_body(path, query["api-version"], body, method)
        if problems:
            raise HttpError(400, "InvalidRequestContent", validation.refusal(problems))
    return route.serve()
