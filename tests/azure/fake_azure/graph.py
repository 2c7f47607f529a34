"""Microsoft Graph v1.0 (on its own port): applications and servicePrincipals.

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

from . import graph_access
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


def handle(fake: FakeAzure, method: str, path: str, query: dict[str, str], body: t.Any) -> Answer:
    parts = path.strip("/").split("/")
    if not parts or parts[0] != "v1.0":
        raise HttpError(501, "NotImplemented", f"no fake for {path}")
    parts = parts[1:]
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
