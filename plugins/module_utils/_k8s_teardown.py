# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): deleting what a stack owns — k8s_apply
state=absent (teardown), and pruning after state=present.

Both delete only what carries the ownership marker with this stack's value: one LIST per kind
(cluster-wide, label selector), then one DELETE per object with ``preconditions.uid`` (so an
object that was deleted and re-made by someone else meanwhile is left alone). Teardown deletes
everything owned, Namespaces last; pruning deletes what the run just applied no longer lists,
but never a Namespace or a CustomResourceDefinition: deleting either takes with it everything
inside it or of its kind, the user's objects included. Those are reported, and left to teardown.
Teardown keeps the CustomResourceDefinitions it created too, unless asked (``delete_crds``): other
controllers, or the user's own Gateways and routes, may use them, and every object of their kinds
in the whole cluster would go with them. The kept ones are reported in ``skipped``.

Propagation is Background: the DELETE returns at once and the garbage collector removes
dependents (ReplicaSets, Pods). Foreground would keep each object around until its dependents
are gone, which only matters to a caller that waits per object; here the wait is for the owned
Namespaces, whose deletion covers everything inside them.
"""

from __future__ import annotations

import time
import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_apply import (
    CRD_KIND,
    Engine,
    EngineError,
    owner_selector,
)
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_client import ApiError, ConnectionFailure
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_discovery import Resource
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_wait import wait_namespaces_gone
from ansible_collections.zerotrust.aks.plugins.module_utils._manifests import (
    KNOWN_KINDS,
    OWNER_LABEL,
    identity,
    kind_rank,
)

DELETE_OPTIONS = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
# Never pruned: deleting one deletes everything in it (Namespace) or of its kind (CRD).
NEVER_PRUNED = ("Namespace", CRD_KIND)


def kinds_to_list(objects: t.Iterable[t.Mapping[str, t.Any]]) -> list[tuple[str, str]]:
    """(apiVersion, kind) of the kinds the collection makes and of those in OBJECTS, one entry per
    kind (the apiVersion OBJECTS use wins), in apply order. The collection's own kinds are
    always included: an owned object of a kind this run does not use any more (the ingress
    controller switched off) must still be found."""
    versions = {kind: api_version for api_version, kind in KNOWN_KINDS}
    for obj in objects:
        api_version, kind = identity(obj)[:2]
        versions[kind] = api_version
    return sorted(((v, k) for k, v in versions.items()), key=lambda pair: kind_rank(pair[1]))


def list_owned(
    engine: Engine, kinds: t.Iterable[tuple[str, str]], purpose: str
) -> tuple[list[tuple[Resource, dict[str, t.Any]]], str]:
    """Every object of KINDS that carries this stack's marker: one LIST per kind served, in all
    namespaces. Also the Namespace LIST's resourceVersion (empty when Namespaces were not listed)."""
    owner = engine.options.owner
    selector = owner_selector(owner)
    found: list[tuple[Resource, dict[str, t.Any]]] = []
    namespaces_revision = ""
    for api_version, kind in kinds:
        resource = engine.discovery.get(api_version, kind)
        if resource is None:
            continue  # not served (its CRD is gone, the CSI driver not installed): none can exist
        listing = _list(engine, resource, selector, purpose)
        if kind == "Namespace":
            namespaces_revision = str((listing.get("metadata") or {}).get("resourceVersion") or "")
        for item in listing.get("items") or []:
            # The selector already says so; checked again because deleting is not undoable.
            if (item.get("metadata", {}).get("labels") or {}).get(OWNER_LABEL) == owner:
                found.append((resource, item))
    return found, namespaces_revision


def _list(engine: Engine, resource: Resource, selector: str, purpose: str) -> dict[str, t.Any]:
    path = resource.path()
    try:
        return t.cast(dict[str, t.Any], engine.client.request("GET", path, query={"labelSelector": selector}).body)
    except ApiError as e:
        if e.status == 403:
            group = resource.api_version.rpartition("/")[0]
            what = f"{resource.plural}.{group}" if group else resource.plural
            scope = "in all namespaces" if resource.namespaced else "(cluster-scoped)"
            raise EngineError(
                f"{purpose} needs to list the {resource.kind} objects labelled {selector}, and the API server "
                f"refused: HTTP {e.status} {e.reason}: {e.message}. Grant the permission 'list' on {what} "
                f"{scope}" + (", or set prune=false" if purpose == "pruning" else "")
            ) from e
        raise EngineError(f"{purpose}: GET {path}: HTTP {e.status} {e.reason}: {e.message}") from e
    except ConnectionFailure as e:
        raise EngineError(f"{purpose}: GET {path}: lost the connection to {engine.client.conn.host}: {e}") from e


def _entry(resource: Resource, item: t.Mapping[str, t.Any]) -> dict[str, str]:
    kind, namespace, name = _key(resource, item)
    return {"kind": kind, "namespace": namespace, "name": name}


def _key(resource: Resource, item: t.Mapping[str, t.Any]) -> tuple[str, str, str]:
    metadata = item["metadata"]
    return resource.kind, metadata.get("namespace", ""), metadata["name"]


def _reverse_apply_order(found: list[tuple[Resource, dict[str, t.Any]]]) -> None:
    """Webhook configurations and Ingresses first, Namespaces last."""
    found.sort(key=lambda pair: (pair[0].kind == "Namespace", -kind_rank(pair[0].kind)))


def absent(engine: Engine, objects: list[dict[str, t.Any]], delete_crds: bool = False) -> None:
    engine.connect()
    found, namespaces_revision = list_owned(engine, kinds_to_list(objects), "teardown")
    owned_namespaces = {item["metadata"]["name"] for resource, item in found if resource.kind == "Namespace"}
    _reverse_apply_order(found)
    kept_crds = []
    for resource, item in found:
        entry = _entry(resource, item)
        if resource.kind == CRD_KIND and not delete_crds:
            kept_crds.append(entry["name"])
            engine.skipped.append(dict(entry, reason="teardown keeps CustomResourceDefinitions unless delete_crds"))
            continue
        if resource.namespaced and entry["namespace"] in owned_namespaces:
            engine.deleted.append(entry)  # goes with its Namespace: no request of its own
            continue
        if not engine.options.check_mode and not _delete(engine, resource, item):
            continue
        engine.deleted.append(entry)
    if kept_crds:
        engine.warnings.append(
            f"Kept the CustomResourceDefinition(s) this stack created: {', '.join(kept_crds)}. Deleting one deletes "
            "every object of its kind in the whole cluster; set delete_crds (zerotrust_aks_teardown_crds: true) to "
            "delete them."
        )
    if owned_namespaces and engine.options.wait and not engine.options.check_mode:
        started = time.monotonic()
        selector = owner_selector(engine.options.owner)
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


def prune(engine: Engine, objects: list[dict[str, t.Any]]) -> None:
    """After Engine.present: delete what this stack owns and the run did not apply.

    The desired set is what the run applied (``engine.objects``, its Secrets included). Owned
    Namespaces come from the Namespace LIST ``present`` made (no second LIST); an unused one is
    reported and kept."""
    desired = {(o["kind"], o["namespace"], o["name"]) for o in engine.objects}
    owner = engine.options.owner
    engine.unused_namespaces = sorted(
        name
        for name, labels in engine.existing.items()
        if labels.get(OWNER_LABEL) == owner and ("Namespace", "", name) not in desired
    )
    if engine.unused_namespaces:
        engine.warnings.append(
            f"Namespace(s) {', '.join(engine.unused_namespaces)} carry {owner_selector(owner)} but are no longer "
            "in the objects: pruning never deletes a Namespace (everything in it would go, your objects "
            "included). What the collection created in it is pruned; teardown (state=absent) removes the "
            "Namespace itself, or delete it yourself once it is empty of anything you keep."
        )
    kinds = [pair for pair in kinds_to_list(objects) if pair[1] not in NEVER_PRUNED]
    found = list_owned(engine, kinds, "pruning")[0]
    stale = [(r, item) for r, item in found if _key(r, item) not in desired]
    _reverse_apply_order(stale)
    for resource, item in stale:
        if not engine.options.check_mode and not _delete(engine, resource, item):
            continue  # gone meanwhile, or replaced by an object someone else made
        entry = _entry(resource, item)
        engine.pruned.append(entry)
        if engine.options.diff:
            where = f"{entry['namespace']}/{entry['name']}" if entry["namespace"] else entry["name"]
            engine.diffs.append(
                {
                    "before_header": f"{entry['kind']} {where}",
                    "after_header": f"{entry['kind']} {where} (pruned: owned, no longer in the objects)",
                    "before": f"{entry['kind']} {where}\n",
                    "after": "",
                }
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
