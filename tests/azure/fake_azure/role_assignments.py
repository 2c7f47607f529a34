"""ARM ``Microsoft.Authorization/roleAssignments`` (list, GET/PUT/DELETE at any scope) and built-in
``roleDefinitions`` (GET, list by ``roleName``).

Refusals, as the service words them:

* the assignment name must be a GUID (400 ``InvalidRoleAssignmentId``);
* the scope must exist: the subscription, a resource group or a resource (404), and a Key Vault
  secret scope needs a vault that uses Azure RBAC
  (https://learn.microsoft.com/azure/key-vault/general/rbac-guide "Secret scope role assignment");
* the role definition must exist (400 ``RoleDefinitionDoesNotExist``);
* the principal must be known to the directory where ARM looks it up: an unknown principal, or a
  new one still replicating (``behaviour.principal_lag``), is 400 ``PrincipalNotFound`` — unless
  the request names its ``principalType``, the documented workaround for a principal created
  moments ago (https://learn.microsoft.com/azure/role-based-access-control/troubleshooting#symptom---assigning-a-role-to-a-new-principal-sometimes-fails);
  a ``principalType`` that is not the principal's is 400 ``UnmatchedPrincipalType``;
* a second assignment of the same role to the same principal at the same scope is 409
  ``RoleAssignmentExists``; changing an existing assignment is 400
  ``RoleAssignmentUpdateNotPermitted`` (https://learn.microsoft.com/azure/role-based-access-control/troubleshooting);
* an assignment takes effect ``behaviour.rbac_propagation`` seconds after it is made (:mod:`.rbac`).

Listing follows https://learn.microsoft.com/rest/api/authorization/role-assignments/list-for-scope:
``$filter=atScope()`` gives the assignments at or above the scope, ``principalId eq '{id}'`` (or
``assignedTo('{id}')``) those of that principal at, above or below it, no filter all of them at,
above or below it.
"""

from __future__ import annotations

import copy
import re
import typing as t

from . import rbac
from .common import Answer, HttpError, get_resource, now_iso

if t.TYPE_CHECKING:
    from .server import FakeAzure

_SPLIT = re.compile(r"/providers/microsoft\.authorization/roleassignments/", re.IGNORECASE)
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")


def _filter(expression: str) -> tuple[bool, str | None]:
    """(atScope(), principal id) of a $filter; 400 for what the service does not support."""
    at_scope, principal = False, None
    for term in (
        part.strip() for part in re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE) if part.strip()
    ):
        if re.fullmatch(r"atScope\(\)", term, flags=re.IGNORECASE):
            at_scope = True
            continue
        m = re.fullmatch(r"principalId\s+eq\s+'?([^']+?)'?", term, flags=re.IGNORECASE) or re.fullmatch(
            r"assignedTo\('([^']+)'\)", term, flags=re.IGNORECASE
        )
        if not m:
            raise HttpError(400, "UnsupportedQuery", f"The filter '{expression}' is not supported.")
        principal = m.group(1).lower()
    return at_scope, principal


def list_for_scope(fake: FakeAzure, scope: str, expression: str = "") -> Answer:
    at_scope, principal = _filter(expression)
    found = []
    for assignment in rbac.assignments(fake):
        props = assignment.get("properties") or {}
        other = str(props.get("scope", ""))
        above = rbac.is_ancestor_or_self(other, scope)
        below = rbac.is_ancestor_or_self(scope, other)
        if principal and str(props.get("principalId", "")).lower() != principal:
            continue
        if above or (below and not at_scope):
            found.append(copy.deepcopy(assignment))
    return Answer(200, {"value": found})


def list_at_subscription(fake: FakeAzure) -> Answer:
    return list_for_scope(fake, f"/subscriptions/{fake.subscription_id}")


def role_definitions(fake: FakeAzure, path: str, expression: str = "") -> Answer:
    """GET {scope}/providers/Microsoft.Authorization/roleDefinitions[/{id}] for the built-in roles
    (https://learn.microsoft.com/rest/api/authorization/role-definitions)."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last.lower() != "roledefinitions":
        role = rbac.ROLES_BY_ID.get(last.lower())
        if role is None:
            raise HttpError(
                404, "RoleDefinitionDoesNotExist", f"The specified role definition with ID '{last}' does not exist."
            )
        return Answer(200, role.definition(fake.subscription_id))
    m = re.fullmatch(r"\s*roleName\s+eq\s+'([^']*)'\s*", expression, flags=re.IGNORECASE)
    if expression and not m:
        raise HttpError(400, "UnsupportedQuery", f"The filter '{expression}' is not supported.")
    roles = [rbac.ROLES_BY_NAME[m.group(1).lower()]] if m and m.group(1).lower() in rbac.ROLES_BY_NAME else []
    return Answer(
        200, {"value": [role.definition(fake.subscription_id) for role in (roles if m else rbac.BUILT_IN_ROLES)]}
    )


def _check_scope(fake: FakeAzure, scope: str) -> None:
    lower = scope.lower().rstrip("/")
    sub = f"/subscriptions/{fake.subscription_id}"
    if lower == sub:
        return
    m = re.fullmatch(re.escape(sub) + r"/resourcegroups/([^/]+)(/.*)?", lower)
    if not m or m.group(1) not in fake.resource_groups:
        group = m.group(1) if m else scope
        raise HttpError(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")
    if not m.group(2):
        return
    secret = re.search(r"/providers/microsoft\.keyvault/vaults/([^/]+)/secrets/([^/]+)$", lower)
    resource = lower.split("/secrets/")[0] if secret else lower
    if resource not in fake.resources:
        parts = scope.split("/")
        kind = "/".join(parts[6:8]) if len(parts) > 8 else scope
        raise HttpError(
            404,
            "ResourceNotFound",
            f"The Resource '{kind}/{parts[8] if len(parts) > 8 else ''}' under resource group '{parts[4]}' was not "
            "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
        )
    if secret and not fake.resources[resource]["properties"].get("enableRbacAuthorization"):
        raise HttpError(400, "BadRequest", "Secret scope role assignments need a vault that uses Azure RBAC.")


def _check_principal(fake: FakeAzure, principal_id: str, given_type: str | None) -> str:
    """The principal's type, or the refusal ARM gives for it."""
    found = rbac.principal(fake, principal_id)
    not_found = HttpError(
        400,
        "PrincipalNotFound",
        f"Principal {principal_id.replace('-', '')} does not exist in the directory {fake.tenant_id}. Check that you "
        "have the correct principal ID. If you are creating this principal and then immediately assigning a role, "
        "this error might be related to a replication delay. In this case, set the role assignment principalType "
        "property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
    )
    if found is None:
        raise not_found
    actual = found[0]
    if given_type is None:
        if not rbac.principal_visible(fake, principal_id):
            raise not_found
        return actual
    if given_type.lower() not in (kind.lower() for kind in PRINCIPAL_TYPES):
        # An enum the service's JSON reader cannot convert (the REST reference lists PRINCIPAL_TYPES).
        raise HttpError(
            400,
            "InvalidRequestContent",
            f'The request content was invalid and could not be deserialized: \'Error converting value "{given_type}" '
            "to type 'PrincipalType'. Path 'properties.principalType'.'.",
        )
    if given_type.lower() != actual.lower() and rbac.principal_visible(fake, principal_id):
        raise HttpError(
            400,
            "UnmatchedPrincipalType",
            f"The PrincipalId '{principal_id.replace('-', '')}' has type '{actual}' , which is different from "
            f"specified PrincipalType '{given_type}'.",
        )
    return given_type


def handle(fake: FakeAzure, method: str, path: str, body: t.Any, caller: str = "") -> Answer:
    path = path.rstrip("/")
    key = path.lower()
    if method == "GET":
        return get_resource(fake, path, "role assignment")
    if method == "DELETE":
        # https://learn.microsoft.com/rest/api/authorization/role-assignments/delete: 200 with the
        # deleted assignment, 204 when there was none.
        removed = fake.resources.pop(key, None)
        return Answer(200, removed) if removed else Answer(204)
    if method != "PUT":
        raise HttpError(501, "NotImplemented", f"The fake Azure does not implement {method} {path}")
    props = (body or {}).get("properties") or {}
    scope, name = _SPLIT.split(path, maxsplit=1)
    if not _GUID.fullmatch(name):
        raise HttpError(
            400,
            "InvalidRoleAssignmentId",
            f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
        )
    _check_scope(fake, scope)
    definition = str(props.get("roleDefinitionId") or "")
    if rbac.role_for_definition_id(definition) is None:
        raise HttpError(
            400,
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{definition.rstrip('/').rsplit('/', 1)[-1]}' does not exist.",
        )
    principal_id = str(props.get("principalId") or "")
    principal_type = _check_principal(fake, principal_id, props.get("principalType"))
    role_guid = definition.rstrip("/").rsplit("/", 1)[-1].lower()
    existing = fake.resources.get(key)
    for other_key, other in fake.resources.items():
        other_props = other.get("properties") or {}
        if (
            rbac.ROLE_ASSIGNMENTS in other_key
            and str(other_props.get("scope", "")).lower().rstrip("/") == scope.lower()
            and str(other_props.get("principalId", "")).lower() == principal_id.lower()
            and str(other_props.get("roleDefinitionId", "")).rstrip("/").rsplit("/", 1)[-1].lower() == role_guid
        ):
            if other_key == key:
                return Answer(201, copy.deepcopy(other))
            raise HttpError(409, "RoleAssignmentExists", "The role assignment already exists.")
    if existing is not None:
        raise HttpError(
            400,
            "RoleAssignmentUpdateNotPermitted",
            "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
        )
    stamp = now_iso()
    resource = {
        "id": path,
        "name": name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": definition,
            "principalId": principal_id,
            "principalType": principal_type,
            "scope": scope,
            "condition": props.get("condition"),
            "conditionVersion": props.get("conditionVersion"),
            "description": props.get("description"),
            "createdOn": stamp,
            "updatedOn": stamp,
            "createdBy": caller or None,
            "updatedBy": caller or None,
        },
    }
    fake.resources[key] = resource
    rbac.record_made(fake, path)
    return Answer(201, copy.deepcopy(resource))
