# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the aks_keyvault_addon module decides what to change on a managed cluster.

This module is private to the collection: its names may change in any release.

The managed-cluster API has no PATCH for anything but tags (ManagedClusters_UpdateTags),
so a change is a PUT of the whole cluster. Like ``az aks enable-addons``, the module
reads the cluster, changes only what it must in that body, and sends it back;
everything else is what the API returned. Read-only fields are dropped because
the SDKs never send them either.
"""

from __future__ import annotations

import copy
import re
import typing as t

ADDON = "azureKeyvaultSecretsProvider"
POLL_INTERVAL = re.compile(r"\A[1-9][0-9]*(?:s|m|h)\Z")
# Read-only in the ManagedCluster schema; the SDKs leave them out of a PUT.
READ_ONLY_PROPERTIES = (
    "provisioningState",
    "powerState",
    "maxAgentPools",
    "fqdn",
    "privateFQDN",
    "azurePortalFQDN",
    "currentKubernetesVersion",
    "resourceUID",
)


def find_key(mapping: dict[str, t.Any], name: str) -> str | None:
    """The key ``name`` has in ``mapping``, compared without case (ARM keys are case-insensitive)."""
    for key in mapping:
        if key.lower() == name.lower():
            return key
    return None


def addon_profile(cluster: dict[str, t.Any]) -> dict[str, t.Any]:
    profiles = (cluster.get("properties") or {}).get("addonProfiles") or {}
    key = find_key(profiles, ADDON)
    return dict(profiles[key]) if key else {}


def wanted_changes(
    cluster: dict[str, t.Any],
    *,
    secret_rotation: bool,
    rotation_poll_interval: str,
    workload_identity: bool,
) -> list[str]:
    """What differs from the wanted state, as sentences; empty when nothing does."""
    changes: list[str] = []
    profile = addon_profile(cluster)
    config = profile.get("config") or {}
    if not profile.get("enabled"):
        changes.append(f"enable the {ADDON} add-on")
    rotation_key = find_key(config, "enableSecretRotation")
    current_rotation = str(config.get(rotation_key, "false") if rotation_key else "false").lower() == "true"
    if current_rotation != secret_rotation:
        changes.append(f"set enableSecretRotation to {str(secret_rotation).lower()}")
    if secret_rotation:
        interval_key = find_key(config, "rotationPollInterval")
        current_interval = str(config.get(interval_key, "")) if interval_key else ""
        if current_interval != rotation_poll_interval:
            changes.append(f"set rotationPollInterval to {rotation_poll_interval} (was {current_interval or 'unset'})")
    if workload_identity:
        properties = cluster.get("properties") or {}
        if not (properties.get("oidcIssuerProfile") or {}).get("enabled"):
            changes.append("enable the OIDC issuer")
        if not ((properties.get("securityProfile") or {}).get("workloadIdentity") or {}).get("enabled"):
            changes.append("enable Workload Identity")
    return changes


def put_body(
    cluster: dict[str, t.Any],
    *,
    secret_rotation: bool,
    rotation_poll_interval: str,
    workload_identity: bool,
) -> dict[str, t.Any]:
    """The cluster as read, with only the add-on (and, if asked, Workload Identity) changed."""
    body = copy.deepcopy(cluster)
    for name in ("eTag", "etag"):
        # Read-only; the version goes in the If-Match header instead.
        body.pop(name, None)
    properties = body.setdefault("properties", {})
    for name in READ_ONLY_PROPERTIES:
        properties.pop(name, None)
    profiles = properties.setdefault("addonProfiles", {}) or {}
    properties["addonProfiles"] = profiles
    for profile in profiles.values():
        # Each add-on's identity is assigned by AKS; it is read-only.
        if isinstance(profile, dict):
            profile.pop("identity", None)
    key = find_key(profiles, ADDON) or ADDON
    profile = profiles.setdefault(key, {})
    profile["enabled"] = True
    config = dict(profile.get("config") or {})
    for name in ("enableSecretRotation", "rotationPollInterval"):
        existing = find_key(config, name)
        if existing and existing != name:
            config[name] = config.pop(existing)
    config["enableSecretRotation"] = "true" if secret_rotation else "false"
    if secret_rotation:
        config["rotationPollInterval"] = rotation_poll_interval
    profile["config"] = config
    if workload_identity:
        properties.setdefault("oidcIssuerProfile", {})["enabled"] = True
        security = properties.setdefault("securityProfile", {})
        security.setdefault("workloadIdentity", {})["enabled"] = True
    return body


def etag(cluster: dict[str, t.Any]) -> str:
    """The cluster's version for optimistic concurrency (``eTag``; https://learn.microsoft.com/azure/aks/use-etags)."""
    key = find_key(cluster, "eTag")
    return str(cluster[key]) if key and cluster[key] else ""


BUSY_MARKERS = ("in progress", "wait for it to finish", "another operation")


def is_busy(status: int, code: str, message: str) -> bool:
    """Whether AKS refused a write because another operation on the cluster is running.

    AKS answers ``409 OperationNotAllowed`` with "Another operation (Updating) is in progress, please wait
    for it to finish before starting a new operation" (https://aka.ms/aks-pending-operation,
    https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/error-codes/operationnotallowed-error).
    The same code also refuses things waiting does not fix (a stopped cluster, for one), so the message decides.
    """
    if status != 409:
        return False
    if code == "AnotherOperationInProgress":
        return True
    return code == "OperationNotAllowed" and any(marker in message.lower() for marker in BUSY_MARKERS)


def network_policy_warning(cluster: dict[str, t.Any]) -> str:
    """A warning when the cluster enforces no NetworkPolicy, else an empty string.

    ``networkProfile.networkPolicy`` is the engine (azure, calico, cilium); empty or ``none``
    means the API server stores NetworkPolicy objects and nothing enforces them
    (https://learn.microsoft.com/azure/aks/use-network-policies).
    """
    profile = (cluster.get("properties") or {}).get("networkProfile") or {}
    engine = str(profile.get("networkPolicy") or "").strip().lower()
    if engine and engine != "none":
        return ""
    return (
        f"managed cluster {cluster.get('name', '')} has no network policy engine (networkProfile.networkPolicy is "
        f"{engine or 'empty'}): every NetworkPolicy the stack applies (default deny, the webhook and metrics fences, "
        "colors-web's egress fence) is stored and silently ignored. Enable one (az aks update --network-policy "
        "azure|calico|cilium) before relying on them."
    )


def outputs(cluster: dict[str, t.Any]) -> dict[str, t.Any]:
    properties = cluster.get("properties") or {}
    identity = addon_profile(cluster).get("identity") or {}
    return dict(
        identity_client_id=identity.get("clientId", ""),
        identity_object_id=identity.get("objectId", ""),
        identity_resource_id=identity.get("resourceId", ""),
        oidc_issuer_url=(properties.get("oidcIssuerProfile") or {}).get("issuerURL", ""),
        workload_identity_enabled=bool(
            ((properties.get("securityProfile") or {}).get("workloadIdentity") or {}).get("enabled")
        ),
        cluster_id=cluster.get("id", ""),
        location=cluster.get("location", ""),
        network_policy=str(((properties.get("networkProfile") or {}).get("networkPolicy")) or ""),
    )
