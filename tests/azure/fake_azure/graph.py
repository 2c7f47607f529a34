"""Microsoft Graph v1.0 (on its own port): applications and servicePrincipals.

Every POST/PATCH body is checked against its v1.0 resource type first (``graph_schema``).
applications: ``$filter=displayName eq '...'``, POST, GET, PATCH (``appRoles`` validated),
addPassword, removePassword, federatedIdentityCredentials (list, POST, PATCH, DELETE);
servicePrincipals: ``$filter=appId eq '...'``, POST, GET, PATCH (``appRoleAssignmentRequired``,
``tags``), appRoleAssignedTo (list, POST, DELETE). Users and groups exist only when a test seeds
them (``FakeAzure.add_group`` / ``add_user``): an assignment to any other principal is refused like Graph refuses it.
Any other route answers 501.
"""

from __future__ import annotations

import copy
import re
import secrets
import typing as t
import uuid

from . import graph_access, graph_schema
from .common import Answer, HttpError, now_iso

if t.TYPE_CHECKING:
    from .server import FakeAzure


def _filter(query: dict[str, str], field_name: str) -> str | None:
    expression = query.get("$filter")
    if expression is None:
        return None
    m = re.fullmatch(rf"\s*{field_name}\s+eq\s+'((?:[^']|'')*)'\s*", expression)
    if not m:
        raise HttpError(400, "Request_UnsupportedQuery", f"filter not faked: {expression}")
    return m.group(1).replace("''", "'")


# Application permissions (the token's ``roles``) each call needs, from the Permissions table of
# each API page: application-post-applications, application-update, application-addpassword,
# application-removepassword, application-post-federatedidentitycredentials,
# serviceprincipal-post-serviceprincipals, serviceprincipal-update (Application.ReadWrite.OwnedBy
# for an application the caller owns, else Application.ReadWrite.All), and
# serviceprincipal-post-approleassignedto / -delete-approleassignedto
# (AppRoleAssignment.ReadWrite.All); reads need any Application or Directory permission
# (https://learn.microsoft.com/graph/api/overview, https://learn.microsoft.com/graph/permissions-reference).
READ_ROLES = {
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Application.ReadWrite.OwnedBy",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
}
WRITE_ALL = "Application.ReadWrite.All"
WRITE_OWNED = "Application.ReadWrite.OwnedBy"
ASSIGN = "AppRoleAssignment.ReadWrite.All"
# Not a Graph permission: an owner's right to assign its application's roles (delegated calls only).
ASSIGN_OWNED = "owner:appRoleAssignedTo"


def _denied() -> HttpError:
    # https://learn.microsoft.com/graph/errors and
    # https://learn.microsoft.com/graph/resolve-auth-errors#403-forbidden-authorization_requestdenied
    return HttpError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def _owned(fake: FakeAzure, app_id: str | None, caller: str) -> bool:
    return caller.lower() in fake.application_owners.get(str(app_id), set())


def _delegated_roles(claims: dict[str, t.Any]) -> set[str]:
    """What a user's (delegated) token may do: the intersection of its scopes and what the user may.

    A delegated call acts with the user's own privileges
    (https://learn.microsoft.com/graph/permissions-overview#delegated-permissions). A member user of a
    tenant with the default settings reads the directory, registers applications (and owns them) and,
    as an owner, manages them and assigns users and groups to their app roles
    (https://learn.microsoft.com/entra/fundamentals/users-default-permissions,
    https://learn.microsoft.com/entra/identity/enterprise-apps/assign-user-or-group-access-portal). The fake
    models no directory roles, so a user never gets more than that.
    """
    scopes = set(str(claims.get("scp") or "").split())
    if not scopes & {"Directory.AccessAsUser.All", "Application.ReadWrite.All", "Directory.ReadWrite.All"}:
        return set(scopes & READ_ROLES)
    return {"Application.Read.All", WRITE_OWNED, ASSIGN_OWNED}


def authorize(fake: FakeAzure, method: str, parts: list[str], body: t.Any, claims: dict[str, t.Any]) -> None:
    """Refuse the call unless the token's application (or the user's delegated) permissions allow it."""
    delegated = claims.get("idtyp") == "user" or (bool(claims.get("scp")) and not claims.get("roles"))
    roles = _delegated_roles(claims) if delegated else set(claims.get("roles") or [])
    caller = str(claims.get("oid") or "")
    if method == "GET":
        if not roles & READ_ROLES:
            raise _denied()
        return
    if parts[0] == "servicePrincipals" and parts[2:3] == ["appRoleAssignedTo"]:
        if ASSIGN in roles:
            return
        principal = fake.service_principals.get(parts[1])
        if ASSIGN_OWNED not in roles or principal is None or not _owned(fake, principal["appId"], caller):
            raise _denied()
        return
    if WRITE_ALL in roles:
        return
    if WRITE_OWNED not in roles:
        raise _denied()
    if parts == ["applications"]:
        return  # the caller becomes its owner
    if parts[0] == "applications":
        app = fake.applications.get(parts[1]) if len(parts) > 1 else None
        if app is not None and not _owned(fake, app["appId"], caller):
            raise _denied()
        return
    if parts == ["servicePrincipals"]:
        app_id = (body or {}).get("appId")
    else:
        principal = fake.service_principals.get(parts[1]) if len(parts) > 1 else None
        app_id = principal["appId"] if principal else None
    known = app_id is not None and any(a["appId"] == app_id for a in fake.applications.values())
    if known and not _owned(fake, app_id, caller):
        raise _denied()


def handle(
    fake: FakeAzure,
    method: str,
    path: str,
    query: dict[str, str],
    body: t.Any,
    claims: dict[str, t.Any] | None = None,
) -> Answer:
    parts = path.strip("/").split("/")
    if not parts or parts[0] != "v1.0":
        raise HttpError(501, "NotImplemented", f"no fake for {path}")
    parts = parts[1:]
    if parts and parts[0] in ("applications", "servicePrincipals") and claims is not None:
        authorize(fake, method, parts, body, claims)
    # Bodies are read against the resource types before anything changes (graph_schema).
    kind = graph_schema.body_type(method, parts)
    if kind is not None:
        graph_schema.check(kind, body)
    if parts == ["applications"] and method == "POST" and claims is not None:
        answer = _handle(fake, method, path, parts, query, body)
        fake.application_owners.setdefault(answer.body["appId"], set()).add(str(claims.get("oid") or "").lower())
        return answer
    return _handle(fake, method, path, parts, query, body)


def _handle(fake: FakeAzure, method: str, path: str, parts: list[str], query: dict[str, str], body: t.Any) -> Answer:
    if parts == ["applications"] and method == "GET":
        name = _filter(query, "displayName")
        found = [a for a in fake.applications.values() if name is None or a["displayName"] == name]
        return Answer(200, {"value": copy.deepcopy(found)})
    if parts == ["applications"] and method == "POST":
        if not (body or {}).get("displayName"):
            raise HttpError(400, "Request_BadRequest", "displayName is required")
        created: dict[str, t.Any] = {
            "id": str(uuid.uuid4()),
            "appId": str(uuid.uuid4()),
            "displayName": body["displayName"],
            "signInAudience": body.get("signInAudience", "AzureADMyOrg"),
            "groupMembershipClaims": body.get("groupMembershipClaims"),
            "web": {
                "redirectUris": list((body.get("web") or {}).get("redirectUris") or []),
                "homePageUrl": None,
                "logoutUrl": None,
                "implicitGrantSettings": {"enableAccessTokenIssuance": False, "enableIdTokenIssuance": False},
                "redirectUriSettings": [],
            },
            "passwordCredentials": [],
            "appRoles": [],
            "tags": list(body.get("tags") or []),
        }
        if "appRoles" in body:
            created["appRoles"] = graph_access.checked_app_roles([], body["appRoles"])
        fake.applications[created["id"]] = created
        fake.federated_credentials[created["id"]] = []
        return Answer(201, copy.deepcopy(created))
    if len(parts) >= 2 and parts[0] == "applications":
        if parts[2:3] not in ([], ["addPassword"], ["removePassword"], ["federatedIdentityCredentials"]):
            raise HttpError(501, "NotImplemented", f"no fake for {method} {path}")
        app = fake.applications.get(parts[1])
        if app is None:
            raise HttpError(404, "Request_ResourceNotFound", f"Resource '{parts[1]}' does not exist")
        if len(parts) == 2 and method == "GET":
            return Answer(200, copy.deepcopy(app))
        if len(parts) == 2 and method == "PATCH":
            for name, value in (body or {}).items():
                if name in ("id", "appId", "passwordCredentials"):
                    raise HttpError(400, "Request_BadRequest", f"{name} cannot be patched")
                if name == "appRoles":
                    value = graph_access.checked_app_roles(app.get("appRoles") or [], value)
                app[name] = value
            return Answer(204)
        if parts[2:] == ["addPassword"] and method == "POST":
            wanted = (body or {}).get("passwordCredential") or {}
            secret_text = secrets.token_urlsafe(30)
            credential = {
                "customKeyIdentifier": None,
                "displayName": wanted.get("displayName"),
                "endDateTime": wanted.get("endDateTime"),
                "hint": secret_text[:3],
                "keyId": str(uuid.uuid4()),
                "startDateTime": now_iso(),
                "secretText": None,
            }
            app["passwordCredentials"].append(credential)
            return Answer(200, dict(credential, secretText=secret_text))
        if parts[2:] == ["removePassword"] and method == "POST":
            key_id = (body or {}).get("keyId")
            before = len(app["passwordCredentials"])
            app["passwordCredentials"] = [c for c in app["passwordCredentials"] if c["keyId"] != key_id]
            if len(app["passwordCredentials"]) == before:
                raise HttpError(404, "Request_ResourceNotFound", f"keyId {key_id} not found")
            return Answer(204)
        if len(parts) >= 3 and parts[2] == "federatedIdentityCredentials":
            return graph_access.federated_credentials(fake, app, method, parts[3:], body)
    if parts == ["servicePrincipals"] and method == "GET":
        app_id = _filter(query, "appId")
        # Replication: a new service principal is missing from reads for behaviour.principal_lag
        # (server.FakeAzure.principal_visible).
        found = [
            p
            for p in fake.service_principals.values()
            if (app_id is None or p["appId"] == app_id) and fake.principal_visible(p["id"])
        ]
        return Answer(200, {"value": [graph_access.service_principal_view(fake, p) for p in found]})
    if parts == ["servicePrincipals"] and method == "POST":
        app_id = (body or {}).get("appId")
        if not any(a["appId"] == app_id for a in fake.applications.values()):
            raise HttpError(
                400,
                "Request_BadRequest",
                "The appId of the service principal does not reference a valid application object.",
            )
        # One service principal per application in a tenant
        # (https://learn.microsoft.com/entra/identity-platform/app-objects-and-service-principals):
        # a second is refused whatever the replication state, 409 with this code and text (as
        # Graph v1.0 answers it, quoted in Azure/reliable-web-app-pattern-java#185).
        if any(p["appId"] == app_id for p in fake.service_principals.values()):
            raise HttpError(
                409,
                "Request_MultipleObjectsWithSameKeyValue",
                "The service principal cannot be created, updated, or restored because the service principal "
                f"name {app_id} is already in use.",
            )
        principal: dict[str, t.Any] = {
            "id": str(uuid.uuid4()),
            "appId": app_id,
            "appRoleAssignmentRequired": False,
            "tags": list((body or {}).get("tags") or []),
        }
        fake.service_principals[principal["id"]] = principal
        fake.app_role_assignments[principal["id"]] = []
        fake.add_principal(principal["id"], "ServicePrincipal")
        return Answer(201, graph_access.service_principal_view(fake, principal))
    if len(parts) >= 2 and parts[0] == "servicePrincipals":
        if parts[2:3] not in ([], ["appRoleAssignedTo"]):
            raise HttpError(501, "NotImplemented", f"no fake for {method} {path}")
        return graph_access.service_principal(fake, method, parts[1:], body)
    raise HttpError(501, "NotImplemented", f"no fake for {method} {path}")
