"""Real Traefik (testbed/build traefik) against the testbed's API server, as a user sees it.

One Traefik for the module, started through controlplane.traefik (the helper that `testbed up
--traefik` and the gateway tests use) after the Gateway API and traefik.io CRDs are applied.
It takes only GatewayClasses labelled for it (traefik.private_selector), so a Traefik of
`up --traefik` or of another test on the same testbed never writes the statuses checked here.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from controlplane import traefik
from controlplane.api import Api
from controlplane.certs import ClusterPKI
from cryptography import x509
from kubernetes import client
from testkit.pki import CertificateAuthority
from testkit.process import ManagedProcess, start_on_free_ports

from .conftest import REPO_ROOT, TESTBED, LocalTestbed, wait_until

GROUP, VERSION = "gateway.networking.k8s.io", "v1"
NO_ENTRYPOINT_PORT = 1  # a listener port no entrypoint of the test's Traefik has
WAIT_S = 30


@dataclass(frozen=True)
class Traefik:
    process: ManagedProcess
    ports: dict[str, int]  # ping, web, websecure
    traefik_id: str

    @property
    def gateway_class(self) -> str:
        return f"traefik-test-{self.traefik_id}"


def built(tool: str) -> Path:
    build = REPO_ROOT / "testbed" / "build"
    subprocess.run([str(build), tool], check=True)  # cached: instant; otherwise shows the build's progress
    found = subprocess.run([str(build), "--print-path", tool], check=True, capture_output=True, text=True)
    return Path(found.stdout.strip())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def read_gateway_class(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    return cast(dict[str, Any], custom.get_cluster_custom_object(GROUP, VERSION, "gatewayclasses", name))


def gateway_class(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GatewayClass",
        "metadata": {"name": name, "labels": labels},
        "spec": {"controllerName": traefik.CONTROLLER_NAME},
    }


@pytest.fixture(scope="module")
def custom(testbed: LocalTestbed) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(testbed.api)


@pytest.fixture(scope="module")
def running_traefik(
    testbed: LocalTestbed, custom: client.CustomObjectsApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Traefik]:
    """Traefik with the CRDs applied and its own GatewayClass (removed afterwards)."""
    traefik.apply_crds(testbed.kubectl, testbed.kubeconfig, built("traefik-crds"))
    binary = built("traefik")
    work = tmp_path_factory.mktemp("traefik")
    traefik_id = uuid.uuid4().hex[:8]
    pki = ClusterPKI(testbed.state_dir / "pki")
    token = work / "token"
    traefik.grant_access(Api(testbed.info["server"], pki), token, expiration_s=1200)

    def launch(ports: dict[str, int]) -> ManagedProcess:
        flags = traefik.arguments(
            api_url=testbed.info["server"],
            token_file=token,
            ca_file=pki.ca,
            entrypoints={"web": f"127.0.0.1:{ports['web']}", "websecure": f"127.0.0.1:{ports['websecure']}"},
            ping_address=f"127.0.0.1:{ports['ping']}",
            gateway_class_selector=traefik.private_selector(traefik_id),
        )
        return traefik.start("traefik", binary, work, flags, lifetime=600)

    process, ports = start_on_free_ports(
        launch, ("ping", "web", "websecure"), ready=lambda _p, ports: traefik.ping(f"127.0.0.1:{ports['ping']}")
    )
    running = Traefik(process, ports, traefik_id)
    custom.create_cluster_custom_object(
        GROUP, VERSION, "gatewayclasses", gateway_class(running.gateway_class, {traefik.PRIVATE_LABEL: traefik_id})
    )
    try:
        yield running
    finally:
        process.stop()
        custom.delete_cluster_custom_object(GROUP, VERSION, "gatewayclasses", running.gateway_class)


def conditions(obj: dict[str, Any], *, listener: str | None = None) -> dict[str, dict[str, Any]]:
    """Status conditions of OBJ (or of its LISTENER) by type."""
    status = obj.get("status") or {}
    if listener is not None:
        status = next((entry for entry in status.get("listeners") or [] if entry["name"] == listener), {})
    return {c["type"]: c for c in status.get("conditions") or []}


def written_by_controller(obj: dict[str, Any]) -> bool:
    """The controller replaced the API server's defaults ("Waiting for controller", Unknown)."""
    return any(c["status"] != "Unknown" for c in conditions(obj).values())


def wait_for_status(
    tr: Traefik, what: str, read: Callable[[], dict[str, Any]], probe: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """READ's object once PROBE holds; fail with its status and Traefik's log tail otherwise."""
    last: dict[str, Any] = {}

    def check() -> bool:
        nonlocal last
        tr.process.check_running()
        last = read()
        return probe(last)

    try:
        wait_until(what, check, timeout=WAIT_S, interval=0.25)
    except pytest.fail.Exception:
        pytest.fail(
            f"timed out after {WAIT_S} s waiting for {what}; status: {last.get('status')}\n"
            f"Traefik log ({tr.process.log_path}):\n{tr.process.log_tail(40)}"
        )
    return last


def make_gateway(
    custom: client.CustomObjectsApi, ns: str, name: str, gateway_class: str, listeners: list[dict[str, Any]]
) -> Callable[[], dict[str, Any]]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"gatewayClassName": gateway_class, "listeners": listeners},
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "gateways", body)

    def read() -> dict[str, Any]:
        return cast(dict[str, Any], custom.get_namespaced_custom_object(GROUP, VERSION, ns, "gateways", name))

    return read


def served_certificate(port: int, server_name: str) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we only look at what is served
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der
    return x509.load_der_x509_certificate(der)


def test_ping_answers_on_traefiks_own_entrypoint(running_traefik: Traefik) -> None:
    assert traefik.ping(f"127.0.0.1:{running_traefik.ports['ping']}")


def test_gateway_class_is_accepted(running_traefik: Traefik, custom: client.CustomObjectsApi) -> None:
    tr = running_traefik
    accepted = wait_for_status(
        tr,
        f"GatewayClass {tr.gateway_class} Accepted",
        lambda: read_gateway_class(custom, tr.gateway_class),
        lambda obj: conditions(obj).get("Accepted", {}).get("status") == "True",
    )
    # Traefik's own reason (the Gateway API spec suggests "Accepted"), and the features it
    # claims: what the gateway-api edge uses among them.
    assert conditions(accepted)["Accepted"]["reason"] == "Handled"
    features = {f["name"] for f in accepted["status"]["supportedFeatures"]}
    assert {"Gateway", "HTTPRoute", "ReferenceGrant", "HTTPRouteSchemeRedirect"} <= features


def test_gateway_on_the_entrypoint_ports_is_programmed_and_serves_its_certificate(
    running_traefik: Traefik, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: Callable[..., str]
) -> None:
    tr = running_traefik
    ns = namespace("gw")
    site = CertificateAuthority("traefik test CA").issue_server("edge.test.invalid", dns=["edge.test.invalid"], ips=())
    core.create_namespaced_secret(
        ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="site-tls"),
            type="kubernetes.io/tls",
            data={
                "tls.crt": base64.b64encode(site.cert_pem).decode(),
                "tls.key": base64.b64encode(site.key_pem).decode(),
            },
        ),
    )
    read = make_gateway(
        custom,
        ns,
        "edge",
        tr.gateway_class,
        [
            {"name": "http", "protocol": "HTTP", "port": tr.ports["web"]},
            {
                "name": "https",
                "protocol": "HTTPS",
                "port": tr.ports["websecure"],
                "hostname": "edge.test.invalid",
                "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "site-tls"}]},
            },
        ],
    )
    gateway = wait_for_status(tr, f"Gateway {ns}/edge status from Traefik", read, written_by_controller)
    gw = conditions(gateway)
    assert gw["Accepted"]["status"] == "True" and gw["Accepted"]["reason"] == "Accepted", gateway["status"]
    assert gw["Programmed"]["status"] == "True" and gw["Programmed"]["reason"] == "Programmed", gateway["status"]
    assert gateway["status"]["addresses"] == [{"type": "IPAddress", "value": "127.0.0.1"}]
    for listener in ("http", "https"):
        found = conditions(gateway, listener=listener)
        assert {t: c["status"] for t, c in found.items()} == {
            "Accepted": "True",
            "ResolvedRefs": "True",
            "Programmed": "True",
        }, gateway["status"]["listeners"]
    # The websecure entrypoint answers TLS with the listener's certificate for its hostname.
    served = wait_until(
        "the site certificate on the websecure entrypoint",
        lambda: (cert := served_certificate(tr.ports["websecure"], "edge.test.invalid")) == site.cert and cert,
        timeout=WAIT_S,
    )
    assert served.subject == site.cert.subject


def test_listener_on_a_port_without_entrypoint_is_not_accepted(
    running_traefik: Traefik, custom: client.CustomObjectsApi, namespace: Callable[..., str]
) -> None:
    tr = running_traefik
    ns = namespace("gw")
    read = make_gateway(
        custom,
        ns,
        "edge",
        tr.gateway_class,
        [
            {"name": "http", "protocol": "HTTP", "port": tr.ports["web"]},
            {"name": "elsewhere", "protocol": "HTTP", "port": NO_ENTRYPOINT_PORT},
        ],
    )
    gateway = wait_for_status(tr, f"Gateway {ns}/edge status from Traefik", read, written_by_controller)
    # The whole Gateway is refused (and gets no Programmed condition); the good listener is fine.
    gw = conditions(gateway)
    assert gw["Accepted"]["status"] == "False" and gw["Accepted"]["reason"] == "ListenersNotValid", gateway["status"]
    assert "Programmed" not in gw, gateway["status"]
    assert conditions(gateway, listener="http")["Programmed"]["status"] == "True"
    elsewhere = conditions(gateway, listener="elsewhere")["Accepted"]
    assert elsewhere["status"] == "False" and elsewhere["reason"] == "PortUnavailable", elsewhere
    assert f"no matching entryPoint for port {NO_ENTRYPOINT_PORT}" in elsewhere["message"]


def test_gateway_class_labelled_for_another_traefik_is_left_alone(
    running_traefik: Traefik, custom: client.CustomObjectsApi, namespace: Callable[..., str]
) -> None:
    tr = running_traefik
    other = f"traefik-other-{uuid.uuid4().hex[:8]}"
    custom.create_cluster_custom_object(
        GROUP, VERSION, "gatewayclasses", gateway_class(other, {traefik.PRIVATE_LABEL: "someone-else"})
    )
    try:
        ns = namespace("gw")
        listeners = [{"name": "http", "protocol": "HTTP", "port": tr.ports["web"]}]
        read_other = make_gateway(custom, ns, "other", other, listeners)
        # A Gateway of our class created after it: once Traefik wrote that one's status, it has
        # seen the other class and its Gateway too.
        read_ours = make_gateway(custom, ns, "ours", tr.gateway_class, listeners)
        wait_for_status(tr, f"Gateway {ns}/ours status from Traefik", read_ours, written_by_controller)
        assert not written_by_controller(read_other()), read_other()["status"]
        untouched = read_gateway_class(custom, other)
        assert conditions(untouched)["Accepted"]["reason"] == "Pending", untouched["status"]
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "gatewayclasses", other)


def test_up_with_traefik_starts_it_and_reports_its_ports(tmp_path: Path) -> None:
    """`testbed up --traefik --traefik-crds`: Traefik runs as part of the testbed, status and
    env say where, it accepts a GatewayClass nobody labelled, `down` stops it."""
    env = {**os.environ, "ZEROTRUST_AKS_TESTBED_DIR": str(tmp_path / "tb")}
    env.pop("KUBECONFIG", None)  # Traefik must not read it (start() gives it PATH only anyway)

    def testbed_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(TESTBED), *args], env=env, capture_output=True, text=True, check=check, timeout=300)

    up = testbed_cli("up", "--traefik", "--traefik-crds", "--lifetime", "10m", check=False)
    try:
        assert up.returncode == 0, up.stderr
        assert "Traefik /ping: ok" in up.stderr
        assert "traefik entrypoints: web 127.0.0.1:" in up.stdout
        exports = dict(line.removeprefix("export ").split("=", 1) for line in testbed_cli("env").stdout.splitlines())
        assert traefik.ping(exports["ZEROTRUST_AKS_TRAEFIK_PING_URL"].removeprefix("http://").removesuffix("/ping"))
        kubectl = [exports["ZEROTRUST_AKS_KUBECTL"], f"--kubeconfig={exports['KUBECONFIG']}"]
        manifest = json.dumps(gateway_class("shared", {}))
        subprocess.run([*kubectl, "create", "-f", "-"], input=manifest, text=True, check=True, capture_output=True)

        def accepted() -> bool:
            found = subprocess.run(
                [*kubectl, "get", "gatewayclass", "shared", "-o", "jsonpath={.status.conditions[0].reason}"],
                capture_output=True,
                text=True,
                check=True,
            )
            return found.stdout == "Handled"

        wait_until("GatewayClass shared Accepted by the testbed's Traefik", accepted, timeout=WAIT_S)
        # A second `up --traefik` finds it running and only reports.
        assert testbed_cli("up", "--traefik").returncode == 0
    finally:
        down = testbed_cli("down", check=False)
    assert down.returncode == 0 and "traefik" in down.stdout, down.stdout + down.stderr
