"""ARM ``Microsoft.ManagedIdentity/userAssignedIdentities`` and their federatedIdentityCredentials (GET/PUT)."""

from __future__ import annotations

import copy
import re
import typing as t
import uuid

from .common import Answer, HttpError, get_resource

if t.TYPE_CHECKING:
    from .server import FakeAzure


def handle(fake: FakeAzure, method: str, path: str, body: t.Any, child: str) -> Answer:
    kind = "federated identity credential" if child else "user assigned identity"
    if child and not re.fullmatch(r"/federatedidentitycredentials/[^/]+", child.lower()):
        raise HttpError(501, "NotImplemented", f"no fake for {path}")
    if method == "GET":
        return get_resource(fake, path, kind)
    if method != "PUT":
        raise HttpError(501, "NotImplemented", f"no fake for {method} {path}")
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
    fake.resources[key] = resource
    return Answer(200 if existing else 201, copy.deepcopy(resource))
