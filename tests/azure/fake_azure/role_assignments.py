"""ARM ``Microsoft.Authorization/roleAssignments``: list at subscription, GET/PUT at any scope.

A second assignment of the same role to the same principal at the same scope is refused with 409
``RoleAssignmentExists``, as Azure does.
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
    if method != "PUT":
        raise HttpError(405, "MethodNotAllowed", method)
    props = (body or {}).get("properties") or {}
    scope = path.rstrip("/").split("/providers/Microsoft.Authorization/roleAssignments/", 1)
    if len(scope) != 2:
        scope = re.split(r"/providers/microsoft\.authorization/roleassignments/", path.rstrip("/"), flags=re.I)
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
