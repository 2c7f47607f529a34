"""What the gateway suite reads back from the testbed's API server after the stack is applied.

Services with the endpoints the endpointslice controller wrote for them (kwok's Pod IPs), the
Pods of each Deployment, the Gateway API objects and Traefik's Middlewares, the oauth2-proxy
Deployment with the Secrets its env references. Everything the harness runs is placed and
configured from these objects, never from the inventory.
"""

from __future__ import annotations

import base64
import time
import typing as t
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from authflow import harness
from kubernetes import client

GATEWAY_GROUP = "gateway.networking.k8s.io"
TRAEFIK_GROUP = "traefik.io"
# Namespaces of the control plane itself: nothing of the stack lives there.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "default"})


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    # Ready endpoints, (Pod IP, target port), as the EndpointSlices hold them.
    endpoints: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    type: str
    cluster_ip: str
    ports: tuple[ServicePort, ...]

    def key(self, port: int) -> str:
        """harness.service_key() of one of its ports (``name.ns.svc.cluster.local:port``)."""
        return harness.service_key(self.name, port, self.namespace)

    def port(self, number: int) -> ServicePort:
        for p in self.ports:
            if p.port == number:
                return p
        raise LookupError(f"Service {self.namespace}/{self.name} has no port {number}")


@dataclass(frozen=True)
class Workload:
    """A Deployment and the Pods it runs (kwok: Running and Ready, with an IP, no container)."""

    deployment: Mapping[str, t.Any]
    pod_ips: tuple[str, ...]

    @property
    def namespace(self) -> str:
        return str(self.deployment["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.deployment["metadata"]["name"])

    def container(self, name: str | None = None) -> Mapping[str, t.Any]:
        containers: list[Mapping[str, t.Any]] = self.deployment["spec"]["template"]["spec"]["containers"]
        return containers[0] if name is None else next(c for c in containers if c["name"] == name)

    @property
    def images(self) -> list[str]:
        return [c["image"] for c in self.deployment["spec"]["template"]["spec"]["containers"]]


@dataclass(frozen=True)
class ClusterState:
    services: tuple[Service, ...]
    workloads: tuple[Workload, ...]
    gateways: tuple[Mapping[str, t.Any], ...]
    httproutes: tuple[Mapping[str, t.Any], ...]
    middlewares: tuple[Mapping[str, t.Any], ...]
    reference_grants: tuple[Mapping[str, t.Any], ...]
    secrets: Mapping[str, Mapping[str, t.Any]] = field(default_factory=dict)  # "ns/name" -> Secret

    def service(self, namespace: str, name: str) -> Service:
        for service in self.services:
            if (service.namespace, service.name) == (namespace, name):
                return service
        raise LookupError(f"no Service {namespace}/{name}")

    def workload(self, namespace: str, name: str) -> Workload:
        for workload in self.workloads:
            if (workload.namespace, workload.name) == (namespace, name):
                return workload
        raise LookupError(f"no Deployment {namespace}/{name}")

    def workloads_with_image(self, repository: str) -> list[Workload]:
        """Deployments running an image of REPOSITORY (``docker.io/traefik``), any tag."""
        return [w for w in self.workloads if any(i.rsplit(":", 1)[0] == repository for i in w.images)]

    def services_selecting(self, workload: Workload) -> list[Service]:
        ips = set(workload.pod_ips)
        return [s for s in self.services if any(ip in ips for p in s.ports for ip, _port in p.endpoints)]

    def route(self, namespace: str, name: str) -> Mapping[str, t.Any]:
        for route in self.httproutes:
            if (route["metadata"]["namespace"], route["metadata"]["name"]) == (namespace, name):
                return route
        raise LookupError(f"no HTTPRoute {namespace}/{name}")

    def middleware(self, namespace: str, name: str) -> Mapping[str, t.Any]:
        for middleware in self.middlewares:
            if (middleware["metadata"]["namespace"], middleware["metadata"]["name"]) == (namespace, name):
                return middleware
        raise LookupError(f"no Middleware {namespace}/{name}")

    @property
    def hostnames(self) -> list[str]:
        """Every host name the Gateways' listeners and the HTTPRoutes name, in order."""
        listeners = [listener.get("hostname") for g in self.gateways for listener in g["spec"]["listeners"]]
        routes = [h for r in self.httproutes for h in r["spec"].get("hostnames") or []]
        return list(dict.fromkeys(h for h in [*listeners, *routes] if h))

    def listener_certificates(self) -> list[Mapping[str, t.Any]]:
        """The Secrets the HTTPS listeners terminate TLS with."""
        found: list[Mapping[str, t.Any]] = []
        for gateway in self.gateways:
            namespace = gateway["metadata"]["namespace"]
            for listener in gateway["spec"]["listeners"]:
                for ref in (listener.get("tls") or {}).get("certificateRefs") or []:
                    key = f"{ref.get('namespace', namespace)}/{ref['name']}"
                    if key in self.secrets and self.secrets[key] not in found:
                        found.append(self.secrets[key])
        return found

    def backend_keys(self) -> set[str]:
        """service_key() of every backendRef of every HTTPRoute."""
        keys = set()
        for route in self.httproutes:
            namespace = route["metadata"]["namespace"]
            for rule in route["spec"].get("rules") or []:
                for ref in rule.get("backendRefs") or []:
                    keys.add(harness.service_key(ref["name"], int(ref["port"]), ref.get("namespace", namespace)))
        return keys


def _list_custom(api: client.CustomObjectsApi, group: str, version: str, plural: str) -> list[dict[str, t.Any]]:
    try:
        listed: dict[str, t.Any] = api.list_cluster_custom_object(group, version, plural)  # type: ignore[assignment]
        items: list[dict[str, t.Any]] = listed["items"]
    except client.ApiException as e:
        if e.status == 404:  # the CRD is not installed
            return []
        raise
    return items


def read_cluster(api_client: client.ApiClient) -> ClusterState:
    """Everything the harness needs, as the API server holds it now."""
    sanitize: Callable[[t.Any], t.Any] = api_client.sanitize_for_serialization
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    discovery = client.DiscoveryV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)

    def items(listed: t.Any) -> list[dict[str, t.Any]]:
        found: list[dict[str, t.Any]] = sanitize(listed)["items"]
        return [i for i in found if i["metadata"].get("namespace") not in SYSTEM_NAMESPACES]

    slices: dict[tuple[str, str], list[dict[str, t.Any]]] = {}
    for endpoint_slice in items(discovery.list_endpoint_slice_for_all_namespaces()):
        meta = endpoint_slice["metadata"]
        owner = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        if owner:
            slices.setdefault((meta["namespace"], owner), []).append(endpoint_slice)
    services = []
    for svc in items(core.list_service_for_all_namespaces()):
        namespace, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        ports = []
        for port in svc["spec"].get("ports") or []:
            endpoints = []
            for endpoint_slice in slices.get((namespace, name), []):
                targets = [
                    p["port"] for p in endpoint_slice.get("ports") or [] if p.get("name", "") == port.get("name", "")
                ]
                for target in targets[:1]:
                    for endpoint in endpoint_slice.get("endpoints") or []:
                        if (endpoint.get("conditions") or {}).get("ready"):
                            endpoints += [(address, int(target)) for address in endpoint["addresses"]]
            ports.append(ServicePort(port.get("name", ""), int(port["port"]), tuple(sorted(set(endpoints)))))
        spec = svc["spec"]
        services.append(Service(namespace, name, spec["type"], spec.get("clusterIP") or "", tuple(ports)))

    pods = items(core.list_pod_for_all_namespaces())
    workloads = []
    for deployment in items(apps.list_deployment_for_all_namespaces()):
        selector = deployment["spec"]["selector"].get("matchLabels") or {}
        ips = sorted(
            p["status"]["podIP"]
            for p in pods
            if p["metadata"]["namespace"] == deployment["metadata"]["namespace"]
            and (p.get("status") or {}).get("podIP")
            and not p["metadata"].get("deletionTimestamp")
            and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
        )
        workloads.append(Workload(deployment, tuple(ips)))

    gateways = _list_custom(custom, GATEWAY_GROUP, "v1", "gateways")
    secrets = {}
    for gateway in gateways:
        namespace = gateway["metadata"]["namespace"]
        for listener in gateway["spec"]["listeners"]:
            for ref in (listener.get("tls") or {}).get("certificateRefs") or []:
                ref_ns = ref.get("namespace", namespace)
                try:
                    secrets[f"{ref_ns}/{ref['name']}"] = sanitize(core.read_namespaced_secret(ref["name"], ref_ns))
                except client.ApiException as e:
                    if e.status != 404:  # not issued yet (cert-manager mode)
                        raise
    return ClusterState(
        services=tuple(services),
        workloads=tuple(workloads),
        gateways=tuple(gateways),
        httproutes=tuple(_list_custom(custom, GATEWAY_GROUP, "v1", "httproutes")),
        middlewares=tuple(_list_custom(custom, TRAEFIK_GROUP, "v1alpha1", "middlewares")),
        reference_grants=tuple(_list_custom(custom, GATEWAY_GROUP, "v1beta1", "referencegrants")),
        secrets=secrets,
    )


def missing_certificates(state: ClusterState) -> list[str]:
    """The listeners' certificate Secrets that do not exist (yet) or hold no certificate."""
    missing = []
    for gateway in state.gateways:
        namespace = gateway["metadata"]["namespace"]
        for listener in gateway["spec"]["listeners"]:
            for ref in (listener.get("tls") or {}).get("certificateRefs") or []:
                key = f"{ref.get('namespace', namespace)}/{ref['name']}"
                if key not in state.secrets or not secret_bytes(state.secrets[key], "tls.crt"):
                    missing.append(f"Secret {key} of listener {listener['name']}")
    return missing


def unready_workloads(state: ClusterState) -> list[str]:
    """Deployments whose Pods do not all have an IP yet, or whose Services miss some endpoint."""
    waiting = []
    for workload in state.workloads:
        replicas = workload.deployment["spec"].get("replicas", 1)
        if len(workload.pod_ips) != replicas:
            waiting.append(f"{workload.namespace}/{workload.name}: {len(workload.pod_ips)}/{replicas} Pods with an IP")
            continue
        for service in state.services_selecting(workload):
            for port in service.ports:
                have = {ip for ip, _port in port.endpoints}
                if not set(workload.pod_ips) <= have:
                    waiting.append(f"Service {service.namespace}/{service.name} port {port.port}: endpoints {have}")
    return waiting


def wait_for_endpoints(
    api_client: client.ApiClient, timeout_s: float = 120, expect: Callable[[ClusterState], Sequence[str]] | None = None
) -> ClusterState:
    """The cluster state once every Deployment's Pods have IPs and every Service's EndpointSlices
    list them (and EXPECT(state), a list of what is still missing, is empty)."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = read_cluster(api_client)
        waiting = [*unready_workloads(state), *(expect(state) if expect else [])]
        if not waiting:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting after {timeout_s:g} s for: {waiting}")
        time.sleep(1)


def secret_bytes(secret: Mapping[str, t.Any], key: str) -> bytes:
    return base64.b64decode((secret.get("data") or {}).get(key) or "")


def service_account_token(api_client: client.ApiClient, namespace: str, name: str, seconds: int = 3600) -> str:
    """A token of ServiceAccount NAMESPACE/NAME (TokenRequest), as the kubelet would mount it."""
    body = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
    answer = client.CoreV1Api(api_client).create_namespaced_service_account_token(name, namespace, body)
    token: str = api_client.sanitize_for_serialization(answer)["status"]["token"]  # type: ignore[no-untyped-call]
    return token
