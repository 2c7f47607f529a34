"""ARM ``Microsoft.Authorization/roleAssignments``: list at subscription, GET/PUT/DELETE at any scope.

A second assignment of the same role to the same principal at the same scope is refused with 409
``RoleAssignmentExists``, as Azure does. Any scope is accepted, including a single Key Vault
secret (``<vault id>/secrets/<name>``, https://learn.microsoft.com/azure/key-vault/general/rbac-guide
"Secret scope role assignment"); there the vault must exist and use Azure RBAC.
"""

from __future__ import annotations

import copy
import re
import typing as t

from .common import Answer, HttpError, get_resource, now_iso

if t.TYPE_CHECKING:
    from .server import FakeAzure


def list_at_subscription(fake: FakeAzure) -> Answer:
    return Answer(200, {"value": [a for k, a in fake.resources.items() if "/roleassignments/" in k]})


def handle(fake: FakeAzure, method: str, path: str, body: t.Any) -> Answer:
    if method == "GET":
        return get_resource(fake, path, "role assignment")
    if method == "DELETE":
        # https://learn.microsoft.com/rest/api/authorization/role-assignments/delete: 200 with the
        # deleted assignment, 204 when there was none.
        removed = fake.resources.pop(path.lower().rstrip("/"), None)
        return Answer(200, removed) if removed else Answer(204)
    if method != "PUT":
        raise HttpError(501, "NotImplemented", f"no fake for {method} on role assignments")
    props = (body or {}).get("properties") or {}
    scope = path.rstrip("/").split("/providers/Microsoft.Authorization/roleAssignments/", 1)
    if len(scope) != 2:
        scope = re.split(r"/providers/microsoft\.authorization/roleassignments/", path.rstrip("/"), flags=re.I)
    secret_scope = re.search(r"/providers/microsoft\.keyvault/vaults/([^/]+)/secrets/([^/]+)$", scope[0], flags=re.I)
    if secret_scope:
        vault = fake.resources.get(scope[0].lower().split("/secrets/")[0])
        if vault is None:
            raise HttpError(404, "ResourceNotFound", f"The Resource '{scope[0]}' was not found.")
        if not vault["properties"].get("enableRbacAuthorization"):
            raise HttpError(400, "BadRequest", "Secret scope role assignments need a vault that uses Azure RBAC.")
    for key, existing in fake.resources.items():
        other = existing.get("properties", {})
        if (
            "/roleassignments/" in key
            and key != path.lower().rstrip("/")
            and other.get("scope", "").lower() == scope[0].lower()
            and other.get("principalId") == props.get("principalId")
            and other.get("roleDefinitionId", "").lower() == props.get("roleDefinitionId", "").lower()
        ):
            raise HttpError(409, "RoleAssignmentExists", "The role assignment already exists.")
    resource = {
        "id": path.rstrip("/"),
        "name": scope[1],
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": props.get("roleDefinitionId"),
            "principalId": props.get("principalId"),
            "principalType": props.get("principalType", "ServicePrincipal"),
            "scope": scope[0],
            "createdOn": now_iso(),
        },
    }
    fake.resources[path.lower().rstrip("/")] = resource
    return Answer(201, copy.deepcopy(resource))
