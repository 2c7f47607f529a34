"""Microsoft Graph v1.0: who may sign in to an application, and what it trusts.

* ``appRoles`` of an application (validated on POST and PATCH of the application);
* servicePrincipals/{id}: GET, PATCH (``appRoleAssignmentRequired``, ``tags``; any other property
  answers 501); its ``appRoles`` mirror the application's, its ``tags`` are its own joined with the
  application's;
* servicePrincipals/{id}/appRoleAssignedTo: list, POST, DELETE;
* applications/{id}/federatedIdentityCredentials: list, POST, PATCH, DELETE.

Each rule cites the page (or the maintainers' thread) it comes from. Where Graph's exact error
text is not documented, the text is the one users report; the status and code are what tests
rely on.
"""

from __future__ import annotations

import copy
import re
import typing as t
import uuid

from .common import Answer, HttpError, now_iso

if t.TYPE_CHECKING:
    from .server import FakeAzure

GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# https://learn.microsoft.com/graph/api/resources/approle (value): at most 120 characters; letters,
# digits and the symbols listed; no spaces; must not begin with ".".
APP_ROLE_VALUE = re.compile(
    r"^(?=.{1,120}$)[A-Za-z0-9!#$%&'()*+,\-/:;<=>?@\[\]^_`{|}~][A-Za-z0-9!#$%&'()*+,\-./:;<=>?@\[\]^_`{|}~]*$"
)
# https://learn.microsoft.com/graph/api/resources/federatedidentitycredential (name): at most 120
# characters, URL friendly, immutable; we take ARM's documented pattern for the same object.
FIC_NAME = re.compile(r"^[A-Za-z0-9][-_A-Za-z0-9]{2,119}$")
# https://learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations:
# at most 20 federated identity credentials per application or identity.
MAX_FEDERATED_CREDENTIALS = 20


def bad_request(message: str, code: str = "Request_BadRequest") -> HttpError:
    return HttpError(400, code, message)


def checked_app_roles(existing: list[dict[str, t.Any]], wanted: t.Any) -> list[dict[str, t.Any]]:
    """The appRoles collection after a PATCH, or Graph's refusal."""
    if not isinstance(wanted, list):
        raise bad_request("Invalid value for appRoles: a collection is expected")
    ids: set[str] = set()
    values: set[str] = set()
    roles = []
    for role in wanted:
        # approle (origin): read-only, "must not be included in any POST or PATCH request".
        if "origin" in role:
            raise bad_request("Property 'origin' is read-only and cannot be set.")
        role_id = str(role.get("id") or "")
        # approle: "When creating a new app role, a new GUID identifier must be provided."
        if not GUID.match(role_id):
            raise bad_request(f"Invalid value specified for property 'id' of resource 'AppRole': {role_id!r}")
        if role_id.lower() in ids:
            raise bad_request("Request contains a property with duplicate values: appRoles.id")
        ids.add(role_id.lower())
        value = role.get("value")
        if value is not None:
            if not APP_ROLE_VALUE.match(str(value)):
                raise bad_request(f"Invalid value specified for property 'value' of resource 'AppRole': {value!r}")
            if value in values:
                raise bad_request("Request contains a property with duplicate values: appRoles.value")
            values.add(value)
        members = role.get("allowedMemberTypes") or []
        # approle (allowedMemberTypes): "User" and/or "Application".
        if not members or any(m not in ("User", "Application") for m in members):
            raise bad_request("Invalid value specified for property 'allowedMemberTypes' of resource 'AppRole'")
        roles.append(
            {
                "allowedMemberTypes": list(members),
                "description": role.get("description"),
                "displayName": role.get("displayName"),
                "id": role_id,
                "isEnabled": role.get("isEnabled", True) is not False,
                "origin": "Application",
                "value": value,
            }
        )
    # approle (isEnabled): "To delete a role, this must first be set to false." Removing or changing
    # the value of an enabled role is refused with this code and text (reported in
    # microsoftgraph/msgraph-sdk-powershell#1054 and #1211).
    after = {r["id"].lower(): r for r in roles}
    for old in existing:
        if not old.get("isEnabled", True):
            continue
        new = after.get(str(old["id"]).lower())
        if new is None or new["value"] != old.get("value"):
            raise bad_request(
                "Permission (scope or role) cannot be deleted or updated unless disabled first.",
                "CannotDeleteOrUpdateEnabledEntitlement",
            )
    return roles


def _application_of(fake: FakeAzure, principal: dict[str, t.Any]) -> dict[str, t.Any]:
    return next(a for a in fake.applications.values() if a["appId"] == principal["appId"])


def service_principal_view(fake: FakeAzure, principal: dict[str, t.Any]) -> dict[str, t.Any]:
    """A service principal as Graph shows it: its appRoles are its application's, and its tags
    "the union of strings set here and on the associated application entity's tags property"
    (https://learn.microsoft.com/graph/api/resources/serviceprincipal, tags)."""
    view = copy.deepcopy(principal)
    application = _application_of(fake, principal)
    view["appRoles"] = copy.deepcopy(application.get("appRoles") or [])
    tags: list[str] = []
    for tag in [*(principal.get("tags") or []), *(application.get("tags") or [])]:
        if tag not in tags:
            tags.append(tag)
    view["tags"] = tags
    return view


def _checked_tags(value: t.Any) -> list[str]:
    # servicePrincipal (tags): a String collection, "Not nullable"; a PATCH replaces the whole
    # collection (https://learn.microsoft.com/graph/api/serviceprincipal-update). The page documents
    # no limit on their number or length, so the fake enforces none.
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise bad_request("Invalid value specified for property 'tags' of resource 'ServicePrincipal'.")
    return list(value)


def service_principal(fake: FakeAzure, method: str, parts: list[str], body: t.Any) -> Answer:
    principal = fake.service_principals.get(parts[0])
    # A service principal read by id during replication is not found yet
    # (https://learn.microsoft.com/graph/api/serviceprincipal-post-serviceprincipals and
    # https://learn.microsoft.com/graph/best-practices-concept#handling-expected-errors: "replication
    # delays" make a just-created object unreadable for a while). Writes reach the primary.
    if principal is not None and len(parts) == 1 and method == "GET" and not fake.principal_visible(principal["id"]):
        principal = None
    if principal is None:
        raise HttpError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{parts[0]}' does not exist or one of its queried reference-property objects are not present.",
        )
    if len(parts) == 1 and method == "GET":
        return Answer(200, service_principal_view(fake, principal))
    if len(parts) == 1 and method == "PATCH":
        # https://learn.microsoft.com/graph/api/serviceprincipal-update: appRoleAssignmentRequired is a
        # Boolean, tags a string collection. Every other property is one the fake does not model.
        changes: dict[str, t.Any] = {}
        for name, value in (body or {}).items():
            if name in ("id", "appId"):
                raise bad_request(f"{name} cannot be patched")
            if name == "appRoleAssignmentRequired":
                if not isinstance(value, bool):
                    raise bad_request("Invalid value specified for property 'appRoleAssignmentRequired'")
                changes[name] = value
            elif name == "tags":
                changes[name] = _checked_tags(value)
            else:
                raise HttpError(501, "NotImplemented", f"no fake for PATCH of servicePrincipal property {name}")
        principal.update(changes)
        return Answer(204)
    if parts[1:2] == ["appRoleAssignedTo"]:
        return app_role_assigned_to(fake, principal, method, parts[2:], body)
    raise HttpError(501, "NotImplemented", f"no fake for {method} servicePrincipals/{'/'.join(parts)}")


def app_role_assigned_to(
    fake: FakeAzure, principal: dict[str, t.Any], method: str, rest: list[str], body: t.Any
) -> Answer:
    assignments = fake.app_role_assignments.setdefault(principal["id"], [])
    if not rest and method == "GET":
        # https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignedto
        return Answer(200, {"value": copy.deepcopy(assignments)})
    if not rest and method == "POST":
        # https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignedto: principalId,
        # resourceId and appRoleId are required; resourceId is this service principal.
        body = body or {}
        for name in ("principalId", "resourceId", "appRoleId"):
            if not GUID.match(str(body.get(name) or "")):
                raise bad_request(f"Invalid value specified for property '{name}' of resource 'AppRoleAssignment'.")
        if body["resourceId"].lower() != principal["id"].lower():
            raise bad_request("resourceId must be the service principal the request is sent to")
        member = fake.directory.get(body["principalId"].lower())
        if member is None:
            raise HttpError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{body['principalId']}' does not exist or one of its queried reference-property objects "
                "are not present.",
            )
        roles = {r["id"].lower(): r for r in _application_of(fake, principal).get("appRoles") or []}
        role = roles.get(body["appRoleId"].lower())
        # The role must be declared (and enabled: a disabled role is not assignable, see
        # MicrosoftDocs/azure-docs#111739); users and groups need "User" in allowedMemberTypes.
        wanted_type = "Application" if member["principalType"] == "ServicePrincipal" else "User"
        if role is None or not role.get("isEnabled", True) or wanted_type not in role["allowedMemberTypes"]:
            raise bad_request(f"Permission being assigned was not found on application '{principal['appId']}'.")
        if any(
            a["principalId"].lower() == body["principalId"].lower()
            and a["appRoleId"].lower() == body["appRoleId"].lower()
            for a in assignments
        ):
            raise bad_request("Permission being assigned already exists on the object")
        assignment = {
            "id": str(uuid.uuid4()).replace("-", "")[:22] + "0000000000000",
            "appRoleId": body["appRoleId"],
            "createdDateTime": now_iso(),
            "deletedDateTime": None,
            "principalDisplayName": member["displayName"],
            "principalId": body["principalId"],
            "principalType": member["principalType"],
            "resourceDisplayName": _application_of(fake, principal)["displayName"],
            "resourceId": principal["id"],
        }
        assignments.append(assignment)
        return Answer(201, copy.deepcopy(assignment))
    if len(rest) == 1 and method == "DELETE":
        # https://learn.microsoft.com/graph/api/serviceprincipal-delete-approleassignedto; an unknown id
        # is refused with this text (microsoftgraph/microsoft-graph-docs-contrib#3614).
        for assignment in assignments:
            if assignment["id"] == rest[0]:
                assignments.remove(assignment)
                return Answer(204)
        raise bad_request("EntitlementGrant being updated or deleted is not found.")
    raise HttpError(501, "NotImplemented", f"no fake for {method} appRoleAssignedTo/{'/'.join(rest)}")


def _check_credential(credential: dict[str, t.Any]) -> None:
    # https://learn.microsoft.com/graph/api/resources/federatedidentitycredential: name, issuer,
    # subject and audiences are required; audiences "can only have one value".
    if not FIC_NAME.match(str(credential.get("name") or "")):
        raise bad_request("Invalid value specified for property 'name' of resource 'FederatedIdentityCredential'.")
    if not str(credential.get("issuer") or "").startswith("https://"):
        raise bad_request("Invalid value specified for property 'issuer' of resource 'FederatedIdentityCredential'.")
    if not str(credential.get("subject") or ""):
        raise bad_request("Invalid value specified for property 'subject' of resource 'FederatedIdentityCredential'.")
    audiences = credential.get("audiences")
    if not isinstance(audiences, list) or len(audiences) != 1:
        raise bad_request("Invalid value specified for property 'audiences' of resource 'FederatedIdentityCredential'.")


def federated_credentials(fake: FakeAzure, app: dict[str, t.Any], method: str, rest: list[str], body: t.Any) -> Answer:
    credentials = fake.federated_credentials.setdefault(app["id"], [])
    if not rest and method == "GET":
        # https://learn.microsoft.com/graph/api/application-list-federatedidentitycredentials
        return Answer(200, {"value": copy.deepcopy(credentials)})
    if not rest and method == "POST":
        # https://learn.microsoft.com/graph/api/application-post-federatedidentitycredentials
        credential: dict[str, t.Any] = {
            "id": str(uuid.uuid4()),
            "name": (body or {}).get("name"),
            "issuer": (body or {}).get("issuer"),
            "subject": (body or {}).get("subject"),
            "audiences": (body or {}).get("audiences"),
            "description": (body or {}).get("description"),
        }
        _check_credential(credential)
        if any(c["name"].lower() == credential["name"].lower() for c in credentials):
            raise HttpError(
                409,
                "Request_MultipleObjectsWithSameKeyValue",
                "FederatedIdentityCredential with this name already exists.",
            )
        # Issuer and subject together are unique per application (resource type page, "subject").
        if any(c["issuer"] == credential["issuer"] and c["subject"] == credential["subject"] for c in credentials):
            raise bad_request("FederatedIdentityCredential with this issuer and subject already exists.")
        if len(credentials) >= MAX_FEDERATED_CREDENTIALS:
            raise bad_request(
                f"An application can have at most {MAX_FEDERATED_CREDENTIALS} federated identity credentials."
            )
        credentials.append(credential)
        return Answer(201, copy.deepcopy(credential))
    found = next((c for c in credentials if rest and rest[0] in (c["id"], c["name"])), None)
    if len(rest) == 1 and method in ("PATCH", "DELETE", "GET"):
        if found is None:
            raise HttpError(404, "Request_ResourceNotFound", f"Resource '{rest[0]}' does not exist.")
        if method == "GET":
            return Answer(200, copy.deepcopy(found))
        if method == "DELETE":
            credentials.remove(found)
            return Answer(204)
        # https://learn.microsoft.com/graph/api/federatedidentitycredential-update: the name is immutable.
        if "name" in (body or {}) and body["name"] != found["name"]:
            raise bad_request("Property 'name' is read-only and cannot be set.")
        updated = dict(
            found, **{k: v for k, v in (body or {}).items() if k in ("issuer", "subject", "audiences", "description")}
        )
        _check_credential(updated)
        found.update(updated)
        return Answer(204)
    raise HttpError(501, "NotImplemented", f"no fake for {method} federatedIdentityCredentials/{'/'.join(rest)}")
