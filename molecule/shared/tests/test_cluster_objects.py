"""What the roles promise, read back from the API server of the scenario's cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

# The identity headers the demo gets; none of the user's tokens (no app asks for them by default).
AUTH_HEADERS = "X-Auth-Request-User,X-Auth-Request-Email,X-Auth-Request-Groups"


@pytest.fixture(scope="module")
def api(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def test_namespaces_enforce_restricted_pod_security(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name in ("oauth2-proxy", "colors-api", "colors-web"):
        labels = core.read_namespace(name).metadata.labels or {}
        assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", name


def test_deployments_are_available(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    for namespace, name in (
        ("oauth2-proxy", "oauth2-proxy"),
        ("colors-api", "colors-api"),
        ("colors-web", "colors-web"),
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
