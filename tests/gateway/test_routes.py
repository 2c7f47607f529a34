"""How the Gateway's objects behave under the real controller, beyond the login itself."""

from __future__ import annotations

import time
import typing as t
from collections.abc import Iterator

import pytest
from authflow import harness
from kubernetes import client

from .checks import condition, echoed, log_in, sent_to_idp
from .conftest import GatewayTestbed
from .edge import OAUTH2_PROXY_PORT, GatewayEdge

COLORS_WEB = harness.service_key("colors-web", 80, "colors-web")


def test_the_forward_auth_request_goes_through_oauth2_proxys_cluster_dns_name(edge: GatewayEdge) -> None:
    """Traefik resolves the Middleware's address (cluster DNS) to the Service's ClusterIP, where
    the kube-proxy stand-in takes the connection: the harness runs the path a cluster has."""
    meta = edge.state.workload("oauth2-proxy", "oauth2-proxy").deployment["metadata"]
    service = edge.state.service(meta["namespace"], meta["name"])
    listen = (service.cluster_ip, OAUTH2_PROXY_PORT)
    before = edge.proxy.bytes_in(listen)
    assert echoed(log_in(edge, edge.browser()))["upstream"] == "colors-web"
    assert edge.proxy.bytes_in(listen) > before


@pytest.fixture
def bypass_route(edge: GatewayEdge, gateway_testbed: GatewayTestbed) -> Iterator[dict[str, t.Any]]:
    """An HTTPRoute an app's namespace publishes itself: straight to its Service, no Middleware."""
    (gateway,) = edge.state.gateways
    # Not next(): in this generator its StopIteration would surface as a bare RuntimeError (PEP 479).
    https_listeners = [listener for listener in gateway["spec"]["listeners"] if listener["protocol"] == "HTTPS"]
    assert https_listeners, f"Gateway {gateway['metadata']['name']} has no HTTPS listener"
    https = https_listeners[0]
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "around-the-login", "namespace": "colors-web"},
        "spec": {
            "parentRefs": [
                {
                    "name": gateway["metadata"]["name"],
                    "namespace": gateway["metadata"]["namespace"],
                    "sectionName": https["name"],
                }
            ],
            "hostnames": [edge.host],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/around"}}],
                    "backendRefs": [{"name": "colors-web", "port": 80}],
                }
            ],
        },
    }
    custom = client.CustomObjectsApi(gateway_testbed.api)
    custom.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", "colors-web", "httproutes", route)
    try:
        yield route
    finally:
        custom.delete_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", "colors-web", "httproutes", "around-the-login"
        )


def test_an_app_namespace_cannot_attach_a_route_around_the_login(
    edge: GatewayEdge, gateway_testbed: GatewayTestbed, bypass_route: dict[str, t.Any]
) -> None:
    """The listeners admit routes from oauth2-proxy's namespace only: Traefik refuses the app's
    own route (status NotAllowedByListeners) and the path stays behind the login."""
    custom = client.CustomObjectsApi(gateway_testbed.api)
    deadline = time.monotonic() + 30
    accepted: t.Mapping[str, t.Any] | None = None
    while time.monotonic() < deadline and accepted is None:
        current = custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", "colors-web", "httproutes", "around-the-login"
        )
        accepted = condition(t.cast(dict[str, t.Any], current), "Accepted")
        time.sleep(0.5)
    assert accepted is not None, "Traefik wrote no status for the route"
    assert (accepted["status"], accepted["reason"]) == ("False", "NotAllowedByListeners"), accepted
    before = len(edge.requests_to(COLORS_WEB))
    assert sent_to_idp(edge.browser().get("/around/anything"), edge)
    assert len(edge.requests_to(COLORS_WEB)) == before
