# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): which kinds the API server serves, under
which plural and scope — from aggregated discovery (two requests for the whole cluster,
Kubernetes >= 1.30 for v2, 1.27-1.29 for v2beta1), else from the classic per-group-version
documents, fetched only for the group versions the objects use."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_client import ApiError, Client

AGGREGATED_ACCEPT = ",".join(
    (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
        "application/json",
    )
)


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str = "", name: str = "") -> str:
        """Collection path (all namespaces when NAMESPACE is empty), or the object path with NAME."""
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        scope = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{base}{scope}/{self.plural}" + (f"/{name}" if name else "")


def group_version_path(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


def parse_aggregated(document: t.Mapping[str, t.Any]) -> list[Resource]:
    """Resources of an APIGroupDiscoveryList (``/api`` or ``/apis``); subresources are nested
    there, so every top-level entry is a real resource."""
    resources = []
    for group in document.get("items") or []:
        group_name = (group.get("metadata") or {}).get("name") or ""
        for version in group.get("versions") or []:
            api_version = f"{group_name}/{version['version']}" if group_name else str(version["version"])
            for entry in version.get("resources") or []:
                kind = (entry.get("responseKind") or {}).get("kind")
                if kind and entry.get("resource"):
                    resources.append(
                        Resource(api_version, str(kind), str(entry["resource"]), entry.get("scope") == "Namespaced")
                    )
    return resources


def parse_resource_list(document: t.Mapping[str, t.Any]) -> list[Resource]:
    """Resources of a classic APIResourceList (``/api/v1``, ``/apis/<group>/<version>``)."""
    api_version = str(document.get("groupVersion") or "")
    return [
        Resource(api_version, str(entry["kind"]), str(entry["name"]), bool(entry.get("namespaced")))
        for entry in document.get("resources") or []
        if "/" not in str(entry.get("name", "/"))  # subresources such as deployments/scale
    ]


def is_aggregated(document: t.Any) -> bool:
    return isinstance(document, dict) and document.get("kind") == "APIGroupDiscoveryList"


class Discovery:
    """(apiVersion, kind) -> Resource for one API server."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.resources: dict[tuple[str, str], Resource] = {}
        self.aggregated = True
        self._fetched: set[str] = set()  # group versions already read the classic way

    def load(self) -> None:
        """GET /api then /apis. The first request is also the connection test; callers turn its
        errors into the message users see when their kubeconfig is wrong."""
        for path in ("/api", "/apis"):
            document = self.client.request("GET", path, accept=AGGREGATED_ACCEPT).body
            if not is_aggregated(document):
                # An older server answers with APIVersions/APIGroupList: read per group version later.
                self.aggregated = False
                return
            self.add(parse_aggregated(document))

    def add(self, resources: t.Iterable[Resource]) -> None:
        for resource in resources:
            self.resources.setdefault((resource.api_version, resource.kind), resource)

    def get(self, api_version: str, kind: str) -> Resource | None:
        found = self.resources.get((api_version, kind))
        if found is None and not self.aggregated and api_version not in self._fetched:
            self.refresh(api_version)
            found = self.resources.get((api_version, kind))
        return found

    def refresh(self, api_version: str) -> None:
        """Read one group version the classic way (1 request); a 404 means it is not served."""
        self._fetched.add(api_version)
        try:
            document = self.client.request("GET", group_version_path(api_version)).body
        except ApiError as e:
            if e.status == 404:
                return
            raise
        self.add(parse_resource_list(document))


def crd_resources(crd: t.Mapping[str, t.Any]) -> list[Resource]:
    """The resources a CustomResourceDefinition serves, from its spec (no request needed)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    return [
        Resource(f"{spec.get('group')}/{version['name']}", str(names.get("kind")), str(names.get("plural")), namespaced)
        for version in spec.get("versions") or []
        if version.get("served", True)
    ]


def is_established(crd: t.Mapping[str, t.Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
