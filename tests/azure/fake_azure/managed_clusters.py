"""ARM ``Microsoft.ContainerService/managedClusters`` and the status of their operations.

GET, and PUT as a long-running operation: 200 + ``Azure-AsyncOperation``, ``InProgress`` once,
then ``Succeeded``; 409 ``OperationNotAllowed`` while one runs; the add-on identity appears when
the azure-keyvault-secrets-provider add-on is enabled. Clusters are only seeded (:func:`seed`),
never created.
"""

from __future__ import annotations

import copy
import typing as t
import uuid

from .common import Answer, HttpError, get_resource, now_iso

if t.TYPE_CHECKING:
    from .server import FakeAzure


def seed(fake: FakeAzure, resource_group: str, name: str, location: str = "westeurope") -> str:
    """A managed cluster as the API returns it, with unrelated settings tests can check survive."""
    cluster_id = (
        f"/subscriptions/{fake.subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
    fake.resources[cluster_id.lower()] = {
        "id": cluster_id,
        "name": name,
        "type": "Microsoft.ContainerService/ManagedClusters",
        "location": location,
        "tags": {"owner": "platform-team"},
        "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid4()), "tenantId": fake.tenant_id},
        "sku": {"name": "Base", "tier": "Free"},
        "properties": {
            "provisioningState": "Succeeded",
            "powerState": {"code": "Running"},
            "kubernetesVersion": "1.33.2",
            "currentKubernetesVersion": "1.33.2",
            "dnsPrefix": name,
            "fqdn": f"{name}-dns.hcp.{location}.azmk8s.io",
            "agentPoolProfiles": [
                {"name": "system", "count": 2, "vmSize": "Standard_D2s_v5", "mode": "System", "osType": "Linux"}
            ],
            "addonProfiles": {"azurepolicy": {"enabled": True, "config": None}},
            "enableRBAC": True,
            "networkProfile": {"networkPlugin": "azure", "networkPolicy": "cilium"},
            "oidcIssuerProfile": {"enabled": False},
            "securityProfile": {},
        },
    }
    return cluster_id


def handle(fake: FakeAzure, method: str, path: str, body: t.Any) -> Answer:
    key = path.lower().rstrip("/")
    if method == "GET":
        return get_resource(fake, path, "Microsoft.ContainerService/managedClusters")
    if method != "PUT":
        raise HttpError(501, "NotImplemented", "only GET and PUT are faked for managed clusters")
    current = fake.resources.get(key)
    if current is None:
        raise HttpError(400, "BadRequest", "creating clusters is not faked")
    if current["properties"]["provisioningState"] not in ("Succeeded", "Failed"):
        raise HttpError(409, "OperationNotAllowed", "Operation is not allowed: another operation is in progress")
    final = copy.deepcopy(body)
    props = final.setdefault("properties", {})
    for name in ("fqdn", "currentKubernetesVersion", "powerState"):
        props[name] = current["properties"].get(name)
    profiles = props.get("addonProfiles") or {}
    old_profiles = current["properties"].get("addonProfiles") or {}
    for addon, profile in profiles.items():
        old_identity = (old_profiles.get(addon) or {}).get("identity")
        if addon.lower() == "azurekeyvaultsecretsprovider" and profile.get("enabled"):
            profile["identity"] = old_identity or {
                "clientId": str(uuid.uuid4()),
                "objectId": str(uuid.uuid4()),
                "resourceId": f"{current['id']}-addon-identity",
            }
    oidc = props.get("oidcIssuerProfile") or {}
    if oidc.get("enabled"):
        oidc["issuerURL"] = f"https://oidc.fake.test/{fake.tenant_id}/{uuid.uuid5(uuid.NAMESPACE_URL, key)}/"
    props["provisioningState"] = "Succeeded"
    operation = str(uuid.uuid4())
    fake.operations[operation] = ["InProgress", "Succeeded"]
    fake.pending[operation] = {"key": key, "final": final}
    current["properties"]["provisioningState"] = "Updating"
    location = current.get("location", "westeurope")
    monitor = (
        f"{fake.base_url}/subscriptions/{fake.subscription_id}/providers/Microsoft.ContainerService"
        f"/locations/{location}/operations/{operation}?api-version=2017-08-31"
    )
    answer = copy.deepcopy(final)
    answer["properties"]["provisioningState"] = "Updating"
    return Answer(200, answer, {"Azure-AsyncOperation": monitor, "Retry-After": "0"})


def operation_status(fake: FakeAzure, operation: str) -> Answer:
    statuses = fake.operations.get(operation)
    if statuses is None:
        raise HttpError(404, "NotFound", f"operation {operation} not found")
    status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
    if status == "Succeeded" and operation in fake.pending:
        done = fake.pending.pop(operation)
        fake.resources[done["key"]] = done["final"]
    return Answer(200, {"name": operation, "status": status, "startTime": now_iso()}, {"Retry-After": "0"})
