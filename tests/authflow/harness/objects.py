"""The objects the login flow is built from, as the cluster layer applies them.

Read back from an API server (:func:`objects_from_cluster`) or taken from a render folder
(:func:`objects_from_render`); plus the few questions every other module asks of the oauth2-proxy
Deployment (its container, the Secrets its env references).
"""

from __future__ import annotations

import base64
import typing as t
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class UnsupportedObject(ValueError):
    """An object uses something the harness cannot reproduce faithfully (so it refuses)."""


@dataclass(frozen=True)
class AppliedObjects:
    """What the login flow is built from, as the cluster holds it.

    ``secrets`` maps Secret name to the Secret object (``data`` base64, as the API returns it) in
    the Deployment's namespace; ``tls_secrets`` maps ``secretName`` of an Ingress TLS entry
    (namespace/name) to a ``kubernetes.io/tls`` Secret, or is empty when the harness should make
    its own certificate; ``controller_config`` is the ingress-nginx controller ConfigMap's data.
    """

    deployment: Mapping[str, t.Any]
    secrets: Mapping[str, Mapping[str, t.Any]]
    ingresses: Sequence[Mapping[str, t.Any]]
    controller_config: Mapping[str, str] = field(default_factory=dict)
    tls_secrets: Mapping[str, Mapping[str, t.Any]] = field(default_factory=dict)

    @property
    def hosts(self) -> list[str]:
        """Every host the Ingresses serve: the oauth2-proxy Ingress's hosts first, in its order
        (the stack model's: main host first), then any other, sorted."""
        first = [
            rule["host"]
            for ing in self.ingresses
            if self._is_oauth2_proxy_ingress(ing)
            for rule in ing["spec"].get("rules") or []
        ]
        others = sorted(
            {rule["host"] for ing in self.ingresses for rule in ing["spec"].get("rules") or []} - set(first)
        )
        return list(dict.fromkeys([*first, *others]))

    @property
    def host(self) -> str:
        """The site: the one host the Ingresses serve, or the first host of oauth2-proxy's Ingress."""
        hosts = self.hosts
        if not hosts:
            raise UnsupportedObject("the Ingresses serve no host")
        if len(hosts) > 1 and not any(self._is_oauth2_proxy_ingress(ing) for ing in self.ingresses):
            raise UnsupportedObject(f"several hosts {hosts} and no oauth2-proxy Ingress naming the main one")
        return hosts[0]

    def _is_oauth2_proxy_ingress(self, ingress: Mapping[str, t.Any]) -> bool:
        meta = self.deployment["metadata"]
        if ingress["metadata"].get("namespace") != meta["namespace"]:
            return False
        return any(
            (p.get("backend") or {}).get("service", {}).get("name") == meta["name"]
            for rule in ingress["spec"].get("rules") or []
            for p in rule["http"]["paths"]
        )


def secret_value(secrets: Mapping[str, Mapping[str, t.Any]], name: str, key: str) -> str:
    """The decoded value of ``key`` in Secret ``name`` (``data`` is base64, ``stringData`` plain)."""
    try:
        secret = secrets[name]
    except KeyError:
        raise UnsupportedObject(f"Secret {name!r} is referenced but not given (have {sorted(secrets)})") from None
    if key in (secret.get("data") or {}):
        return base64.b64decode(str(secret["data"][key])).decode()
    if key in (secret.get("stringData") or {}):
        return str(secret["stringData"][key])
    raise UnsupportedObject(f"Secret {name!r} has no key {key!r}")


def make_secret(namespace: str, name: str, data: Mapping[str, str]) -> dict[str, t.Any]:
    """A Secret object shaped as the API server returns it (values base64 in ``data``)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def objects_from_render(
    render_dir: Path,
    secrets: Mapping[str, Mapping[str, t.Any]],
    *,
    deployment_name: str = "oauth2-proxy",
    deployment_namespace: str = "oauth2-proxy",
    controller_configmap: tuple[str, str] = ("ingress-nginx", "ingress-nginx-controller"),
) -> AppliedObjects:
    """The objects of a render folder (one object per ``*.yaml``), plus Secrets made by the caller.

    Render mode writes no Secret (no values leave Ansible), so the caller supplies them.
    """
    objects: list[Mapping[str, t.Any]] = []
    for path in sorted(render_dir.glob("*.yaml")):
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return _select(objects, secrets, deployment_name, deployment_namespace, controller_configmap)


def objects_from_cluster(
    kubeconfig: Path | str,
    *,
    context: str | None = None,
    deployment_name: str = "oauth2-proxy",
    deployment_namespace: str = "oauth2-proxy",
    controller_configmap: tuple[str, str] = ("ingress-nginx", "ingress-nginx-controller"),
    ingress_class: str = "nginx",
) -> AppliedObjects:
    """The objects as applied on the API server of ``kubeconfig`` (what the lead's fixture uses).

    Reads the Deployment, every Secret its env references, every Ingress of ``ingress_class``
    in any namespace, their TLS Secrets and the controller ConfigMap (empty when absent).
    """
    from kubernetes import client, config  # the venv has it; imported here so unit tests need no cluster

    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), context=context
    )
    with api_client:
        sanitize = api_client.sanitize_for_serialization
        apps = client.AppsV1Api(api_client)
        core = client.CoreV1Api(api_client)
        networking = client.NetworkingV1Api(api_client)
        deployment = sanitize(apps.read_namespaced_deployment(deployment_name, deployment_namespace))
        secrets = {
            name: sanitize(core.read_namespaced_secret(name, deployment_namespace))
            for name in referenced_secret_names(deployment)
        }
        ingresses = [
            sanitize(ing)
            for ing in networking.list_ingress_for_all_namespaces().items
            if ing.spec is not None and ing.spec.ingress_class_name == ingress_class
        ]
        tls_secrets: dict[str, Mapping[str, t.Any]] = {}
        for ing in ingresses:
            namespace = ing["metadata"]["namespace"]
            for tls in ing["spec"].get("tls") or []:
                key = f"{namespace}/{tls['secretName']}"
                if key not in tls_secrets:
                    tls_secrets[key] = sanitize(core.read_namespaced_secret(tls["secretName"], namespace))
        try:
            cm = core.read_namespaced_config_map(controller_configmap[1], controller_configmap[0])
            controller_config = dict(cm.data or {})
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            controller_config = {}
    return AppliedObjects(deployment, secrets, ingresses, controller_config, tls_secrets)


def _select(
    objects: Iterable[Mapping[str, t.Any]],
    secrets: Mapping[str, Mapping[str, t.Any]],
    deployment_name: str,
    deployment_namespace: str,
    controller_configmap: tuple[str, str],
) -> AppliedObjects:
    deployment = None
    ingresses = []
    controller_config: dict[str, str] = {}
    for obj in objects:
        meta = obj.get("metadata", {})
        ident = (obj.get("kind"), meta.get("namespace"), meta.get("name"))
        if ident == ("Deployment", deployment_namespace, deployment_name):
            deployment = obj
        elif obj.get("kind") == "Ingress":
            ingresses.append(obj)
        elif ident == ("ConfigMap", *controller_configmap):
            controller_config = dict(obj.get("data") or {})
    if deployment is None:
        raise UnsupportedObject(f"no Deployment {deployment_namespace}/{deployment_name} among the objects")
    return AppliedObjects(deployment, dict(secrets), ingresses, controller_config)


def container_of(deployment: Mapping[str, t.Any], name: str) -> Mapping[str, t.Any]:
    containers: list[Mapping[str, t.Any]] = deployment["spec"]["template"]["spec"]["containers"]
    for container in containers:
        if container["name"] == name:
            return container
    raise UnsupportedObject(f"Deployment has no container {name!r} (has {[c['name'] for c in containers]})")


def referenced_secret_names(deployment: Mapping[str, t.Any], container: str = "oauth2-proxy") -> list[str]:
    """Names of the Secrets the container's env reads (``secretKeyRef``), in order."""
    names: list[str] = []
    for entry in container_of(deployment, container).get("env") or []:
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref and ref["name"] not in names:
            names.append(ref["name"])
    return names
