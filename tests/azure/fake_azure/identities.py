"""ARM ``Microsoft.ManagedIdentity/userAssignedIdentities`` and their federatedIdentityCredentials (GET/PUT).

A new identity's service principal (its ``principalId``) is registered as a principal created now:
like any new service principal it replicates for ``behaviour.principal_lag`` before role
assignment finds it without a ``principalType``
(https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/managed-identity-best-practice-recommendations#limitation-of-using-managed-identities-for-authorization
and https://learn.microsoft.com/azure/role-based-access-control/troubleshooting).
An identity holds at most 20 federated identity credentials
(https://learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations#general-federated-identity-credential-considerations).
"""

from __future__ import annotations

import copy
import re
import typing as t
import uuid

from . import rbac
from .common import Answer, HttpError, get_resource

MAX_FEDERATED_CREDENTIALS = 20

if t.TYPE_CHECKING:
    from .server import FakeAzure


def handle(fake: FakeAzure, method: str, path: str, body: t.Any, child: str) -> Answer:
    kind = "federated identity credential" if child else "user assigned identity"
    if child and not re.fullmatch(r"/federatedidentitycredentials/[^/]+", child.lower()):
        raise HttpError(501, "NotImplemented", f"The fake Azure does not implement {method} {path}")
    if method == "GET":
        return get_resource(fake, path, kind)
    if method != "PUT":
        raise HttpError(501, "NotImplemented", f"The fake Azure does not implement {method} {path}")
    key = path.lower().rstrip("/")
    existing = fake.resources.get(key)
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if child:
        # https://learn.microsoft.com/rest/api/managedidentity/federated-identity-credentials/create-or-update
        # and https://learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations:
        # the identity must exist; name 3-120 characters [A-Za-z0-9-_] starting with a letter or digit;
        # issuer an https URL; exactly one audience.
        parent = path.rstrip("/").lower().rsplit("/federatedidentitycredentials/", 1)[0]
        if parent not in fake.resources:
            raise HttpError(
                404, "ResourceNotFound", f"The user assigned identity '{parent.rsplit('/', 1)[-1]}' was not found."
            )
        if not re.fullmatch(r"[A-Za-z0-9][-_A-Za-z0-9]{2,119}", name):
            raise HttpError(400, "BadRequest", f"Invalid federated identity credential name '{name}'.")
        props = dict((body or {}).get("properties") or {})
        for required in ("issuer", "subject", "audiences"):
            if not props.get(required):
                raise HttpError(400, "BadRequest", f"properties.{required} is required")
        if not str(props["issuer"]).startswith("https://"):
            raise HttpError(400, "BadRequest", "The issuer must be an https URL.")
        if len(props["audiences"]) != 1:
            raise HttpError(400, "BadRequest", "Only one audience is allowed.")
        siblings = [k for k in fake.resources if k.startswith(parent + "/federatedidentitycredentials/")]
        if existing is None and len(siblings) >= MAX_FEDERATED_CREDENTIALS:
            raise HttpError(
                400,
                "BadRequest",
                f"The user assigned identity already has the maximum of {MAX_FEDERATED_CREDENTIALS} federated "
                "identity credentials.",
            )
        resource = {
            "id": path.rstrip("/"),
            "name": name,
            "type": "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
            "properties": props,
        }
    else:
        identity_props = (existing or {}).get("properties") or {
            "clientId": str(uuid.uuid4()),
            "principalId": str(uuid.uuid4()),
            "tenantId": fake.tenant_id,
        }
        resource = {
            "id": path.rstrip("/"),
            "name": name,
            "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
            "location": (body or {}).get("location", "westeurope"),
            "tags": (body or {}).get("tags") or {},
            "properties": identity_props,
        }
        if existing is None:
            rbac.register_principal(fake, identity_props["principalId"], "ServicePrincipal")
    fake.resources[key] = resource
    return Answer(200 if existing else 201, copy.deepcopy(resource))
