"""ARM ``Microsoft.ContainerService/managedClusters`` and the status of their operations.

* GET answers the cluster with its ``eTag``; every accepted PUT gives it a new one. ``If-Match``
  with another eTag (or ``*`` on a cluster that does not exist) and ``If-None-Match: *`` on one that
  does are 412 ``PreconditionFailed`` (https://learn.microsoft.com/azure/aks/use-etags).
* PUT is a long-running operation: 200 with ``provisioningState: Updating`` and an
  ``Azure-AsyncOperation`` URL (https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations).
  The operation answers ``InProgress`` ``behaviour.aks_operation_polls`` times, then ``Succeeded``.
  Time passes with the requests that look at the cluster (status polls, GETs, refused PUTs), so a
  client that stopped polling still finds the operation finished later.
* A PUT while an operation runs is 409 ``OperationNotAllowed``
  (https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/error-codes/operationnotallowed-error).
* Read-only members of the request are ignored (the service's values are kept); the
  azure-keyvault-secrets-provider add-on gets its managed identity when enabled, registered as a
  new principal (it replicates like any new service principal), and the OIDC issuer its URL.

Clusters are only seeded (:func:`seed`); creating one is not faked (501).
"""

from __future__ import annotations

import copy
import typing as t
import uuid

from . import rbac
from .common import Answer, HttpError, now_iso

if t.TYPE_CHECKING:
    from .server import FakeAzure

ADDON = "azurekeyvaultsecretsprovider"
# Read-only in ManagedCluster (azure-mgmt-containerservice models, _validation readonly).
READ_ONLY = (
    "provisioningState",
    "powerState",
    "maxAgentPools",
    "currentKubernetesVersion",
    "fqdn",
    "privateFQDN",
    "azurePortalFQDN",
    "resourceUID",
)


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
        "eTag": str(uuid.uuid4()),
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
            "nodeResourceGroup": f"MC_{resource_group}_{name}_{location}",
            "securityProfile": {},
        },
    }
    return cluster_id


def _running(fake: FakeAzure, key: str) -> str | None:
    """The operation running on the cluster, after letting one more step of it pass."""
    for operation, pending in list(fake.pending.items()):
        if pending["key"] == key:
            _step(fake, operation)
            return operation if operation in fake.pending else None
    return None


def _step(fake: FakeAzure, operation: str) -> str:
    statuses = fake.operations[operation]
    status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
    if status == "Succeeded" and operation in fake.pending:
        done = fake.pending.pop(operation)
        cluster = fake.resources.get(done["key"])
        if cluster is not None:
            cluster["properties"]["provisioningState"] = "Succeeded"
    return status


def _header(headers: t.Any, name: str) -> str | None:
    value = headers.get(name) if headers is not None else None
    return None if value is None else str(value).strip()


def _precondition(cluster: dict[str, t.Any] | None, headers: t.Any, name: str) -> None:
    if_match, if_none_match = _header(headers, "If-Match"), _header(headers, "If-None-Match")
    current = cluster.get("eTag") if cluster else None
    failed = None
    if if_match is not None and if_match != "":
        wanted = if_match.removeprefix("W/").strip('"')
        if cluster is None or (wanted != "*" and wanted != current):
            failed = f"If-Match '{if_match}'"
    if if_none_match == "*" and cluster is not None:
        failed = "If-None-Match '*'"
    if failed:
        raise HttpError(
            412,
            "PreconditionFailed",
            f"Operation failed: the precondition {failed} does not hold for managed cluster '{name}' "
            f"(current eTag '{current}'). Read the cluster again and retry with its eTag.",
        )


def handle(fake: FakeAzure, method: str, path: str, body: t.Any, headers: t.Any = None) -> Answer:
    key = path.lower().rstrip("/")
    name = path.rstrip("/").rsplit("/", 1)[-1]
    current = fake.resources.get(key)
    if current is not None:
        current.setdefault("eTag", str(uuid.uuid4()))  # a cluster seeded without one
    if method == "GET":
        if current is None:
            raise HttpError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.ContainerService/managedClusters/{name}' under resource group "
                f"'{path.split('/')[4]}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        _running(fake, key)
        return Answer(200, copy.deepcopy(current))
    if method != "PUT":
        raise HttpError(501, "NotImplemented", f"The fake Azure does not implement {method} {path}")
    _precondition(current, headers, name)
    if current is None:
        raise HttpError(501, "NotImplemented", f"The fake Azure does not implement creating a cluster (PUT {path})")
    running = _running(fake, key)
    if running:
        started = fake.pending[running].get("started", "")
        raise HttpError(
            409,
            "OperationNotAllowed",
            f"Operation is not allowed because there's an in progress update managed cluster operation (operation "
            f"ID: {running}) on the managed cluster started on UTC {started}. Please wait for it to finish before "
            "starting a new operation. See https://aka.ms/aks-pending-operation for more details",
        )
    final = copy.deepcopy(body)
    for member in ("id", "name", "type", "systemData"):
        final[member] = current.get(member)
    final = {k: v for k, v in final.items() if v is not None}
    # The identity's principal and tenant are read-only.
    if isinstance(final.get("identity"), dict) and isinstance(current.get("identity"), dict):
        for member in ("principalId", "tenantId"):
            if member in current["identity"]:
                final["identity"][member] = current["identity"][member]
    props = final.setdefault("properties", {})
    for member in READ_ONLY:
        props.pop(member, None)
        if member in current["properties"]:
            props[member] = copy.deepcopy(current["properties"][member])
    profiles = props.get("addonProfiles") or {}
    old_profiles = current["properties"].get("addonProfiles") or {}
    for addon, profile in profiles.items():
        if not isinstance(profile, dict):
            continue
        old_identity = (old_profiles.get(addon) or {}).get("identity")
        profile.pop("identity", None)
        if addon.lower() == ADDON and profile.get("enabled"):
            identity = old_identity or {
                "clientId": str(uuid.uuid4()),
                "objectId": str(uuid.uuid4()),
                "resourceId": (
                    f"/subscriptions/{fake.subscription_id}/resourcegroups/"
                    f"{current['properties'].get('nodeResourceGroup') or 'MC_' + name}/providers/"
                    f"Microsoft.ManagedIdentity/userAssignedIdentities/azurekeyvaultsecretsprovider-{name}"
                ),
            }
            profile["identity"] = identity
            rbac.register_principal(fake, identity["objectId"], "ServicePrincipal")
        elif old_identity:
            profile["identity"] = old_identity
    oidc = props.get("oidcIssuerProfile") or {}
    if oidc.get("enabled"):
        oidc["issuerURL"] = f"https://oidc.fake.test/{fake.tenant_id}/{uuid.uuid5(uuid.NAMESPACE_URL, key)}/"
    else:
        oidc.pop("issuerURL", None)
    final["eTag"] = str(uuid.uuid4())
    props["provisioningState"] = "Updating"
    operation = str(uuid.uuid4())
    polls = max(0, int(getattr(getattr(fake, "behaviour", None), "aks_operation_polls", 1)))
    fake.operations[operation] = ["InProgress"] * polls + ["Succeeded"]
    fake.pending[operation] = {"key": key, "started": now_iso()}
    fake.resources[key] = final
    location = current.get("location", "westeurope")
    monitor = (
        f"{fake.base_url}/subscriptions/{fake.subscription_id}/providers/Microsoft.ContainerService"
        f"/locations/{location}/operations/{operation}?api-version=2017-08-31"
    )
    return Answer(200, copy.deepcopy(final), {"Azure-AsyncOperation": monitor, "Retry-After": "0"})


def operation_status(fake: FakeAzure, operation: str) -> Answer:
    if operation not in fake.operations:
        raise HttpError(404, "NotFound", f"operation {operation} not found")
    status = _step(fake, operation)
    return Answer(200, {"name": operation, "status": status, "startTime": now_iso()}, {"Retry-After": "0"})
