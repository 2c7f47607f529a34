# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): k8s_apply state=absent.

Deletes only what carries the ownership marker with this stack's value: one LIST per kind
(cluster-wide, label selector), then one DELETE per object with ``preconditions.uid`` (so an
object that was deleted and re-made by someone else meanwhile is left alone), Namespaces last.

Propagation is Background: the DELETE returns at once and the garbage collector removes
dependents (ReplicaSets, Pods). Foreground would keep each object around until its dependents
are gone, which only matters to a caller that waits per object; here the wait is for the owned
Namespaces, whose deletion covers everything inside them.
"""

from __future__ import annotations

import time
import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_apply import Engine, EngineError, owner_selector
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_client import ApiError, ConnectionFailure
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_discovery import Resource
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_wait import wait_namespaces_gone
from ansible_collections.zerotrust.aks.plugins.module_utils._manifests import OWNER_LABEL, identity, kind_rank

DELETE_OPTIONS = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}


def kinds_to_list(objects: t.Iterable[t.Mapping[str, t.Any]]) -> list[tuple[str, str]]:
    """Distinct (apiVersion, kind) of OBJECTS plus Secret, in apply order."""
    seen: dict[tuple[str, str], None] = {("v1", "Secret"): None}
    for obj in objects:
        api_version, kind = identity(obj)[:2]
        seen.setdefault((api_version, kind), None)
    return sorted(seen, key=lambda pair: kind_rank(pair[1]))


def absent(engine: Engine, objects: list[dict[str, t.Any]]) -> None:
    engine.connect()
    owner = engine.options.owner
    selector = owner_selector(owner)
    found: list[tuple[Resource, dict[str, t.Any]]] = []
    namespaces_revision = ""
    for api_version, kind in kinds_to_list(objects):
        resource = engine.discovery.get(api_version, kind)
        if resource is None:
            continue  # not served (its CRD is gone): nothing of it can exist
        listing = engine.call(None, "GET", resource.path(), query={"labelSelector": selector}).body
        if kind == "Namespace":
            namespaces_revision = str((listing.get("metadata") or {}).get("resourceVersion") or "")
        for item in listing.get("items") or []:
            # The selector already says so; checked again because deleting is not undoable.
            if (item.get("metadata", {}).get("labels") or {}).get(OWNER_LABEL) == owner:
                found.append((resource, item))
    owned_namespaces = {item["metadata"]["name"] for resource, item in found if resource.kind == "Namespace"}
    # Reverse apply order (webhooks first, Namespaces last).
    found.sort(key=lambda pair: (pair[0].kind == "Namespace", -kind_rank(pair[0].kind)))
    for resource, item in found:
        metadata = item["metadata"]
        namespace = metadata.get("namespace", "")
        entry = {"kind": resource.kind, "namespace": namespace, "name": metadata["name"]}
        if resource.namespaced and namespace in owned_namespaces:
            engine.deleted.append(entry)  # goes with its Namespace: no request of its own
            continue
        if not engine.options.check_mode and not _delete(engine, resource, item):
            continue
        engine.deleted.append(entry)
    if owned_namespaces and engine.options.wait and not engine.options.check_mode:
        started = time.monotonic()
        try:
            left = wait_namespaces_gone(
                engine.client, owned_namespaces, selector, namespaces_revision, started + engine.options.wait_timeout
            )
        except (ApiError, ConnectionFailure) as e:
            raise EngineError(f"waiting for the owned Namespaces to be deleted: {e}") from e
        engine.waited["seconds"] = round(time.monotonic() - started, 1)
        if left:
            raise EngineError(
                f"timed out after {engine.options.wait_timeout} s waiting for Namespace(s) "
                f"{', '.join(sorted(left))} to be deleted (still terminating)"
            )


def _delete(engine: Engine, resource: Resource, item: dict[str, t.Any]) -> bool:
    """DELETE with the uid seen in the LIST; False when it is already gone or was replaced."""
    metadata = item["metadata"]
    body = dict(DELETE_OPTIONS, preconditions={"uid": metadata["uid"]})
    path = resource.path(metadata.get("namespace", ""), metadata["name"])
    try:
        engine.client.request("DELETE", path, body=body, ok=(200, 202))
    except ApiError as e:
        if e.status in (404, 409):  # gone, or a different object of the same name now
            return False
        raise EngineError(f"deleting {resource.kind} {path}: HTTP {e.status} {e.reason}: {e.message}") from e
    except ConnectionFailure as e:
        raise EngineError(f"deleting {resource.kind} {path}: {e}") from e
    return True
