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
        raise HttpError(404, "NotFound", f"no fake for {path}")
    if method == "GET":
        return get_resource(fake, path, kind)
    if method != "PUT":
        raise HttpError(405, "MethodNotAllowed", method)
    key = path.lower().rstrip("/")
    existing = fake.resources.get(key)
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if child:
        props = dict((body or {}).get("properties") or {})
        for required in ("issuer", "subject", "audiences"):
            if not props.get(required):
                raise HttpError(400, "BadRequest", f"properties.{required} is required")
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
