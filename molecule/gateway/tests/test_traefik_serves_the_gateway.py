"""The real Traefik binary serving what the gateway scenario applied, as the collection deploys it.

Run by Molecule's verifier for the gateway scenario only (molecule.yml, additional_files_or_dirs).
kwok runs no container, so the test runs the Traefik the testbed built (TRAEFIK_VERSION, the
release of the role's image) on this machine with the **arguments of the applied Deployment**
and a token of the **applied ServiceAccount**, so that it has exactly the RBAC the role grants
(a rule missing shows as "forbidden" in its log and as a route or Gateway that never gets
ready). Only what Traefik cannot have outside a pod is added: where the API server is (endpoint,
token file, CA file; no in-cluster config) and a loopback address of its own for the entry
points, whose ports stay the Gateway's listener ports. Then:

- the Gateway and its listeners are Accepted and Programmed, every HTTPRoute Accepted with its
  references resolved (the Middlewares through the CRD provider, the ReferenceGrants, the
  Services): the objects, the RBAC and the vendored CRDs fit the pinned Traefik;
- plain HTTP on every host answers 301 to the same URL on https;
- the https listener serves the site certificate from the gateway namespace's Secret.

The login flow through this Traefik (oauth2-proxy, the IdP, an app) is tests/gateway's.
"""

from __future__ import annotations

import base64
import http.client
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "testbed" / "lib"))

from testkit.process import ManagedProcess

GATEWAY_NS, ROUTE_NS, NAME = "traefik", "oauth2-proxy", "zerotrust-aks"
GATEWAY_API = ("gateway.networking.k8s.io", "v1")


def kubeconfig() -> Path:
    path = os.environ.get("K8S_AUTH_KUBECONFIG") or os.environ.get("KUBECONFIG", "")
    if not path or not Path(path).is_file():
        pytest.fail("K8S_AUTH_KUBECONFIG must name the scenario's kubeconfig")
    return Path(path)


@pytest.fixture(scope="module")
def api() -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig()))


def custom(api: client.ApiClient, kind: str, namespace: str, name: str) -> dict[str, t.Any]:
    plural = {"Gateway": "gateways", "HTTPRoute": "httproutes"}[kind]
    found: dict[str, t.Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        *GATEWAY_API, namespace, plural, name
    )
    return found


def condition(obj: t.Mapping[str, t.Any], kind: str) -> bool:
    return any(c["type"] == kind and c["status"] == "True" for c in obj.get("conditions") or [])


@pytest.fixture(scope="module")
def traefik(api: client.ApiClient) -> Iterator[tuple[str, ManagedProcess]]:
    """Traefik with the Deployment's arguments, as the ServiceAccount traefik, on a random
    loopback address (other tests on this machine may hold 127.0.0.1's ports)."""
    with tempfile.TemporaryDirectory(prefix="zt-gateway-traefik-") as tmp:
        work = Path(tmp)
        config_data = yaml.safe_load(kubeconfig().read_text())
        cluster = config_data["clusters"][0]["cluster"]
        ca_file = work / "ca.crt"
        if "certificate-authority-data" in cluster:
            ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        else:
            ca_file.write_text(Path(cluster["certificate-authority"]).read_text())
        token = client.CoreV1Api(api).create_namespaced_service_account_token(
            "traefik", GATEWAY_NS, client.AuthenticationV1TokenRequest(spec={"expirationSeconds": 600})
        )
        token_file = work / "token"
        token_file.write_text(token.status.token)
        token_file.chmod(0o600)
        deployment = client.AppsV1Api(api).read_namespaced_deployment("traefik", GATEWAY_NS)
        (container,) = deployment.spec.template.spec.containers
        address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"  # noqa: S311
        args = []
        for arg in container.args:
            flag, _sep, value = arg.partition("=")
            if flag.startswith("--entryPoints.") and flag.endswith(".address"):
                arg = f"{flag}={address}{value}"  # ":8443" -> "127.x.y.z:8443"
            args.append(arg)
        for provider in ("kubernetesgateway", "kubernetescrd"):
            args += [
                f"--providers.{provider}.endpoint={cluster['server']}",
                f"--providers.{provider}.token={token_file}",
                f"--providers.{provider}.certauthfilepath={ca_file}",
            ]
        binary = subprocess.run(  # noqa: S603 - the repository's own build script
            [str(REPO / "testbed" / "build"), "--print-path", "traefik"], capture_output=True, text=True, check=True
        ).stdout.strip()
        # PATH only, its own working directory: no KUBECONFIG or traefik.yml of ours may win over the flags.
        process = ManagedProcess(
            "traefik", [binary, *args, "--log.nocolor=true"], work, inherit_env=False, lifetime=600, cwd=work
        )
        try:
            process.wait_until(lambda: ping(address), 60, "answering /ping")
            yield address, process
        finally:
            process.stop()


def ping(address: str) -> bool:
    connection = http.client.HTTPConnection(address, 8080, timeout=2)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status == 200
    finally:
        connection.close()


def test_the_gateway_and_every_route_are_accepted_with_the_roles_rbac(
    api: client.ApiClient, traefik: tuple[str, ManagedProcess]
) -> None:
    _address, process = traefik
    routes = client.CustomObjectsApi(api).list_namespaced_custom_object(*GATEWAY_API, ROUTE_NS, "httproutes")["items"]
    names = sorted(route["metadata"]["name"] for route in routes)
    assert names == ["colors-web", "http-to-https", "oauth2-proxy"]

    def ready() -> bool:
        gateway = custom(api, "Gateway", GATEWAY_NS, NAME).get("status") or {}
        if not (condition(gateway, "Accepted") and condition(gateway, "Programmed")):
            return False
        if not all(condition(listener, "Programmed") for listener in gateway.get("listeners") or []):
            return False
        for name in names:
            parents = custom(api, "HTTPRoute", ROUTE_NS, name).get("status", {}).get("parents") or []
            if not (parents and all(condition(p, "Accepted") and condition(p, "ResolvedRefs") for p in parents)):
                return False
        return True

    process.wait_until(ready, 90, "serving the Gateway and its routes")
    gateway = custom(api, "Gateway", GATEWAY_NS, NAME)["status"]
    listeners = {listener["name"]: listener for listener in gateway["listeners"]}
    assert sorted(listeners) == ["http", "https"]
    assert listeners["https"]["attachedRoutes"] == 2, "colors-web and oauth2-proxy"
    assert listeners["http"]["attachedRoutes"] == 1, "the redirect only"
    log = process.log_path.read_text()
    assert "forbidden" not in log.lower(), process.log_tail(80)


def hosts(api: client.ApiClient) -> list[str]:
    hostnames: list[str] = custom(api, "HTTPRoute", ROUTE_NS, "http-to-https")["spec"]["hostnames"]
    return hostnames


def redirect_of(address: str, host: str) -> tuple[int, str | None]:
    connection = http.client.HTTPConnection(address, 8000, timeout=5)
    try:
        connection.request("GET", "/some/page?x=1", headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.getheader("Location")
    finally:
        connection.close()


def test_plain_http_is_redirected_to_https(api: client.ApiClient, traefik: tuple[str, ManagedProcess]) -> None:
    address, process = traefik
    for host in hosts(api):
        expected = (301, f"https://{host}/some/page?x=1")
        # Traefik writes the routes' status as soon as it has read them, and serves them once its
        # providers' throttle (2 s) has passed: until then the entry point answers 404.
        try:
            process.wait_until(lambda h=host, e=expected: redirect_of(address, h) == e, 30, "redirecting")
        except TimeoutError:
            pytest.fail(f"http://{host}/ answers {redirect_of(address, host)}, not {expected}: {process.log_tail(40)}")


def served_certificate(address: str, host: str) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed: compared byte for byte instead
    with (
        socket.create_connection((address, 8443), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return tls.getpeercert(binary_form=True) or b""


def test_the_https_listener_serves_the_site_certificate(
    api: client.ApiClient, traefik: tuple[str, ManagedProcess]
) -> None:
    address, process = traefik
    secret = client.CoreV1Api(api).read_namespaced_secret("zerotrust-aks-tls", GATEWAY_NS)
    expected = ssl.PEM_cert_to_DER_cert(base64.b64decode(secret.data["tls.crt"]).decode())
    host = hosts(api)[0]
    # Until its configuration is loaded Traefik serves its own default certificate.
    try:
        process.wait_until(lambda: served_certificate(address, host) == expected, 30, "serving the site certificate")
    except TimeoutError:
        pytest.fail("Traefik does not serve the Secret the Gateway's https listener names: " + process.log_tail(40))
