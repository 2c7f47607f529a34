"""What the roles promise, read back from the API server of the scenario's cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

# The identity headers the demo gets; none of the user's tokens (no app asks for them by default).
AUTH_HEADERS = "X-Auth-Request-User,X-Auth-Request-Email,X-Auth-Request-Groups"
AUTH_URL = "http://oauth2-proxy.oauth2-proxy.svc.cluster.local:4180/oauth2/auth"
# The scenario's edge (molecule.yml, verifier env): ingress-nginx unless it says gateway-api.
EDGE = os.environ.get("ZEROTRUST_AKS_EDGE", "ingress-nginx")
ingress_edge = pytest.mark.skipif(EDGE != "ingress-nginx", reason="the ingress-nginx edge's objects")
gateway_edge = pytest.mark.skipif(EDGE != "gateway-api", reason="the gateway-api edge's objects")


@pytest.fixture(scope="module")
def api(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def test_namespaces_enforce_restricted_pod_security(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name in ("oauth2-proxy", "colors-api", "colors-web", *(["traefik"] if EDGE == "gateway-api" else [])):
        labels = core.read_namespace(name).metadata.labels or {}
        assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", name


def test_deployments_are_available(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    for namespace, name in (
        ("oauth2-proxy", "oauth2-proxy"),
        ("colors-api", "colors-api"),
        ("colors-web", "colors-web"),
        *([("traefik", "traefik")] if EDGE == "gateway-api" else []),
    ):
        deployment = apps.read_namespaced_deployment(name, namespace)
        available = [c for c in deployment.status.conditions or [] if c.type == "Available"]
        assert available and available[0].status == "True", f"{namespace}/{name}"


def test_colors_api_is_cluster_internal(api: client.ApiClient) -> None:
    services = client.CoreV1Api(api).list_namespaced_service("colors-api").items
    assert [(s.spec.type, [(p.port, p.target_port) for p in s.spec.ports]) for s in services] == [
        ("ClusterIP", [(80, 8080)])
    ]
    assert client.NetworkingV1Api(api).list_namespaced_ingress("colors-api").items == []


@ingress_edge
def test_colors_web_ingress_sends_requests_through_oauth2_proxy(api: client.ApiClient) -> None:
    ingresses = client.NetworkingV1Api(api).list_namespaced_ingress("colors-web").items
    assert len(ingresses) == 1
    annotations: dict[str, Any] = ingresses[0].metadata.annotations
    assert annotations["nginx.ingress.kubernetes.io/auth-url"] == (
        "http://oauth2-proxy.oauth2-proxy.svc.cluster.local:4180/oauth2/auth"
    )
    assert annotations["nginx.ingress.kubernetes.io/auth-signin"] == (
        "https://$host/oauth2/start?rd=$escaped_request_uri"
    )
    assert annotations["nginx.ingress.kubernetes.io/auth-response-headers"] == AUTH_HEADERS
    assert ingresses[0].spec.ingress_class_name == "nginx"
    labels: dict[str, Any] = ingresses[0].metadata.labels
    assert labels["app.kubernetes.io/component"] == "protected-ingress"


def test_oauth2_proxy_secrets_exist_with_their_keys(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name in ("client-id", "client-secret", "cookie-secret"):
        assert name in (core.read_namespaced_secret(name, "oauth2-proxy").data or {}), name


def custom(api: client.ApiClient, group: str, version: str, plural: str, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.CustomObjectsApi(api).list_namespaced_custom_object(
        group, version, namespace, plural
    )["items"]
    return items


@gateway_edge
def test_colors_web_route_sends_requests_through_oauth2_proxy(api: client.ApiClient) -> None:
    assert client.NetworkingV1Api(api).list_ingress_for_all_namespaces().items == [], "no Ingress on this edge"
    routes = {
        r["metadata"]["name"]: r for r in custom(api, "gateway.networking.k8s.io", "v1", "httproutes", "oauth2-proxy")
    }
    assert sorted(routes) == ["colors-web", "http-to-https", "oauth2-proxy"]
    (rule,) = routes["colors-web"]["spec"]["rules"]
    assert [f["extensionRef"]["name"] for f in rule["filters"]] == ["colors-web-signin", "colors-web-auth"]
    assert [(b["name"], b["namespace"], b["port"]) for b in rule["backendRefs"]] == [("colors-web", "colors-web", 80)]
    middlewares = {
        m["metadata"]["name"]: m["spec"] for m in custom(api, "traefik.io", "v1alpha1", "middlewares", "oauth2-proxy")
    }
    assert middlewares["colors-web-auth"]["forwardAuth"]["address"] == AUTH_URL
    assert ",".join(middlewares["colors-web-auth"]["forwardAuth"]["authResponseHeaders"]) == AUTH_HEADERS
    assert middlewares["colors-web-signin"]["errors"]["query"] == "/oauth2/start?rd={url}"
    (gateway,) = custom(api, "gateway.networking.k8s.io", "v1", "gateways", "traefik")
    for listener in gateway["spec"]["listeners"]:
        assert "oauth2-proxy" in str(listener["allowedRoutes"]["namespaces"]["selector"])
    assert custom(api, "gateway.networking.k8s.io", "v1beta1", "referencegrants", "colors-api") == []


@gateway_edge
def test_the_crds_were_created_by_the_collection(api: client.ApiClient) -> None:
    crds = client.ApiextensionsV1Api(api).list_custom_resource_definition().items
    ours = {c.metadata.name for c in crds if (c.metadata.labels or {}).get("zerotrust.aks/owned-by") == "zerotrust-aks"}
    assert {
        "gateways.gateway.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
        "middlewares.traefik.io",
    } <= ours
