"""cert-manager TLS with the real controller: cert-manager v1.21.2's own control loops
(testbed/certmanager, built by testbed/build) against a testbed of this module's own
(``module_testbed``), started with the role's RBAC.

Not the session's testbed: there the edge serves the site Secret that the session's cert-manager
issued (stack.yml), and the Certificates here are renewed every 30 s; two controllers on one API
server would also fight over the same objects.

Everything cert-manager gets is what the collection renders (render_cert_manager.yml: the stack
model, then the cert_manager and tls roles with zerotrust_aks_tls_mode cert-manager): the CRDs of
roles/cert_manager (its vendored file), its Namespace, ServiceAccount and RBAC, and the
ClusterIssuers and Certificates of roles/tls (self-signed ClusterIssuer -> CA Certificate -> CA
ClusterIssuer -> one site Certificate for every host). The controller runs with a token of the
role's ServiceAccount, so it has exactly the RBAC the role grants: a rule it lacks shows as
"forbidden" in its log and fails these tests.

The site certificate lives 1h (cert-manager's minimum) and is renewed 59m30s before expiry, so
cert-manager renews it 30 s after issuing it: renewal is observed, not simulated. Nothing here
runs cert-manager's webhook (so nothing defaults or validates the objects: the tls role checks
its durations against the webhook's minimums itself), nor the cainjector.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import time
import typing as t
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from controlplane import certmanager
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client
from kubernetes.client import ApiException
from support.playbook import run_playbook
from testkit.ports import free_port
from testkit.process import ManagedProcess, ProcessExited

from .conftest import INVENTORIES, STACK_VARS, GatewayTestbed, tool_path

HERE = Path(__file__).resolve().parent
DURATION, DURATION_DELTA = "1h", datetime.timedelta(hours=1)
RENEW_BEFORE = "59m30s"  # renewal due 30 s after issuance
READY_TIMEOUT_S = 90
RENEWAL_TIMEOUT_S = 120
SETUP_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


@dataclass(frozen=True)
class Rendered:
    crds: list[dict[str, t.Any]]
    setup: list[dict[str, t.Any]]  # Namespace, ServiceAccounts, RBAC of roles/cert_manager
    issuers_and_certificates: list[dict[str, t.Any]]  # roles/tls
    tls: dict[str, t.Any]  # the stack model's tls

    def certificates(self) -> list[dict[str, t.Any]]:
        return [o for o in self.issuers_and_certificates if o["kind"] == "Certificate"]

    @property
    def ca_certificate(self) -> dict[str, t.Any]:
        (ca,) = [c for c in self.certificates() if c["spec"].get("isCA")]
        return ca

    @property
    def site_certificates(self) -> list[dict[str, t.Any]]:
        return [c for c in self.certificates() if not c["spec"].get("isCA")]


@dataclass
class Controller:
    process: ManagedProcess
    testbed: GatewayTestbed
    healthz: str

    def fail(self, message: str) -> t.NoReturn:
        pytest.fail(
            f"{message}\ncert-manager's log ({self.process.log_path}), last lines:\n{self.process.log_tail(60)}"
        )

    def wait(self, probe: t.Callable[[], t.Any], timeout_s: float, what: str) -> t.Any:
        """PROBE's first truthy result within TIMEOUT_S while the controller runs."""
        try:
            return self.process.wait_until(probe, timeout_s, what, interval_s=0.5)
        except TimeoutError:
            self.fail(f"timed out after {timeout_s:g} s waiting for: {what}")
        except ProcessExited:
            self.fail(f"cert-manager exited while waiting for: {what}")


@pytest.fixture(scope="module")
def rendered(ansible_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    work = tmp_path_factory.mktemp("cert-manager-render")
    output = work / "objects.json"
    env = {k: v for k, v in ansible_env.items() if not k.startswith("K8S_AUTH_")}
    run_playbook(
        HERE / "render_cert_manager.yml",
        env=env,
        inventory=INVENTORIES,
        extra_vars_files=[STACK_VARS],
        extra_vars={
            "zerotrust_aks_render_dir": str(work / "render"),
            "zerotrust_aks_tls_mode": "cert-manager",
            "zerotrust_aks_cert_manager_install": True,
            "tls_cert_manager_duration": DURATION,
            "tls_cert_manager_renew_before": RENEW_BEFORE,
            "cert_manager_test_output": str(output),
        },
    )
    objects = json.loads(output.read_text())
    manifests = objects["cert_manager"]
    return Rendered(
        crds=[o for o in manifests if o["kind"] == "CustomResourceDefinition"],
        setup=[o for o in manifests if o["kind"] in SETUP_KINDS],
        issuers_and_certificates=objects["tls"],
        tls=objects["model"],
    )


def kubectl_apply(testbed: GatewayTestbed, objects: list[dict[str, t.Any]], path: Path) -> None:
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    testbed.kubectl_run("apply", "--server-side", "--field-manager=zerotrust-aks-test", "-f", str(path))


@pytest.fixture(scope="module")
def controller(
    module_testbed: GatewayTestbed, rendered: Rendered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Controller]:
    testbed = module_testbed
    work = tmp_path_factory.mktemp("cert-manager")
    assert {c["metadata"]["name"] for c in rendered.crds} >= {
        "certificates.cert-manager.io",
        "clusterissuers.cert-manager.io",
        "certificaterequests.cert-manager.io",
    }, "the cert_manager role rendered no cert-manager CRDs"
    crds = work / "crds.json"
    kubectl_apply(testbed, rendered.crds, crds)
    testbed.kubectl_run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))
    kubectl_apply(testbed, rendered.setup, work / "setup.json")
    namespace = rendered.tls["cert_manager"]["namespace"]
    token = testbed.kubectl_run(
        "create", "token", "cert-manager", f"--namespace={namespace}", "--duration=1h"
    ).stdout.strip()
    kubeconfig = work / "cert-manager.kubeconfig"
    certmanager.write_token_kubeconfig(
        testbed.kubeconfig, kubeconfig, token=token, user=f"system:serviceaccount:{namespace}:cert-manager"
    )
    metrics, healthz = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    flags = certmanager.arguments(
        kubeconfig=kubeconfig,
        metrics_address=metrics,
        healthz_address=healthz,
        cluster_resource_namespace=namespace,
        # What roles/cert_manager runs in a cluster (without the shims).
        extra=["--controllers=*,-ingress-shim"],
    )
    process = certmanager.start("cert-manager", tool_path("cert-manager"), work / "logs", flags, lifetime=1800)
    running = Controller(process, testbed, healthz)
    try:
        running.wait(lambda: certmanager.live(healthz), 30, "answering /livez")
        yield running
    finally:
        process.stop()


def certificate(api: client.ApiClient, namespace: str, name: str) -> dict[str, t.Any]:
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "cert-manager.io", "v1", namespace, "certificates", name
    )
    return t.cast(dict[str, t.Any], obj)


def condition(obj: t.Mapping[str, t.Any], kind: str) -> dict[str, t.Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return {}


def secret_certificates(api: client.ApiClient, namespace: str, name: str) -> tuple[x509.Certificate, x509.Certificate]:
    """(tls.crt, ca.crt) of Secret NAMESPACE/NAME."""
    data = client.CoreV1Api(api).read_namespaced_secret(name, namespace).data or {}
    leaf = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
    ca = x509.load_pem_x509_certificate(base64.b64decode(data["ca.crt"]))
    return leaf, ca


@dataclass(frozen=True)
class Issued:
    seconds: float  # from applying the objects to every Certificate Ready
    ca: x509.Certificate
    leaves: dict[str, x509.Certificate]  # namespace -> site certificate first issued
    cas_in_secrets: dict[str, x509.Certificate]  # namespace -> ca.crt of the site Secret then
    revisions: dict[str, int]


@pytest.fixture(scope="module")
def issued(controller: Controller, rendered: Rendered, tmp_path_factory: pytest.TempPathFactory) -> Issued:
    testbed = controller.testbed
    work = tmp_path_factory.mktemp("cert-manager-objects")
    # The stack creates these namespaces (the Gateway's, or oauth2-proxy's and the apps'); here
    # nothing else of the stack is applied.
    for namespace in rendered.tls["namespaces"]:
        kubectl_apply(
            testbed, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}], work / "ns.json"
        )
    started = time.monotonic()
    kubectl_apply(testbed, rendered.issuers_and_certificates, work / "tls.json")

    def ready(cert: dict[str, t.Any]) -> t.Callable[[], bool]:
        namespace, name = cert["metadata"]["namespace"], cert["metadata"]["name"]

        def probe() -> bool:
            try:
                current = certificate(testbed.api, namespace, name)
            except ApiException:
                return False
            return condition(current, "Ready").get("status") == "True"

        return probe

    for cert in [rendered.ca_certificate, *rendered.site_certificates]:
        meta = cert["metadata"]
        controller.wait(ready(cert), READY_TIMEOUT_S, f"Certificate {meta['namespace']}/{meta['name']} Ready")
    seconds = time.monotonic() - started
    ca_meta = rendered.ca_certificate["metadata"]
    ca, _ca_issuer = secret_certificates(
        testbed.api, ca_meta["namespace"], rendered.ca_certificate["spec"]["secretName"]
    )
    leaves, cas, revisions = {}, {}, {}
    for cert in rendered.site_certificates:
        namespace = cert["metadata"]["namespace"]
        leaves[namespace], cas[namespace] = secret_certificates(testbed.api, namespace, cert["spec"]["secretName"])
        revisions[namespace] = certificate(testbed.api, namespace, cert["metadata"]["name"])["status"]["revision"]
    print(f"\ncert-manager: every Certificate Ready {seconds:.1f} s after the objects were applied")
    return Issued(seconds, ca, leaves, cas, revisions)


def test_the_rendered_chain_is_what_the_stack_model_asks_for(rendered: Rendered) -> None:
    cm = rendered.tls["cert_manager"]
    assert cm["create"] == "ca"
    kinds = sorted(
        (o["kind"], o["metadata"]["name"]) for o in rendered.issuers_and_certificates if o["kind"] == "ClusterIssuer"
    )
    assert [name for _kind, name in kinds] == sorted(
        [cm["issuer"]["name"], rendered.ca_certificate["spec"]["issuerRef"]["name"]]
    )
    assert {c["metadata"]["namespace"] for c in rendered.site_certificates} == set(rendered.tls["namespaces"])
    for cert in rendered.site_certificates:
        assert cert["spec"]["issuerRef"] == {"group": "cert-manager.io", **cm["issuer"]}
        assert cert["spec"]["dnsNames"] == rendered.tls["hosts"]
        assert cert["spec"]["secretName"] == rendered.tls["secret_name"]
        assert (cert["spec"]["duration"], cert["spec"]["renewBefore"]) == (DURATION, RENEW_BEFORE)


def test_site_certificate_is_ready_and_signed_by_the_ca(
    issued: Issued, controller: Controller, rendered: Rendered
) -> None:
    assert issued.ca.subject == issued.ca.issuer, "the CA should be self-signed (ClusterIssuer selfSigned)"
    assert issued.ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for cert in rendered.site_certificates:
        namespace = cert["metadata"]["namespace"]
        leaf = issued.leaves[namespace]
        assert issued.cas_in_secrets[namespace] == issued.ca, "the Secret's ca.crt should be the CA Certificate's"
        assert leaf.issuer == issued.ca.subject
        leaf.verify_directly_issued_by(issued.ca)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == rendered.tls["hosts"]
        common = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        assert common == [rendered.tls["hosts"][0]]
        assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == DURATION_DELTA
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.SERVER_AUTH in usage
        current = certificate(controller.testbed.api, namespace, cert["metadata"]["name"])
        assert condition(current, "Ready")["reason"] == "Ready", current.get("status")


def test_certificate_is_renewed_with_a_new_key(issued: Issued, controller: Controller, rendered: Rendered) -> None:
    """renewBefore 59m30s of a 1h certificate: cert-manager renews it 30 s after issuing it, with
    a new serial and (rotationPolicy Always) a new key, and the Secret follows."""
    api = controller.testbed.api
    for cert in rendered.site_certificates:
        namespace, name = cert["metadata"]["namespace"], cert["metadata"]["name"]
        first = issued.leaves[namespace]

        def renewed(namespace: str = namespace, name: str = name) -> int:
            try:
                revision = int(certificate(api, namespace, name).get("status", {}).get("revision") or 0)
            except ApiException:
                return 0
            return revision if revision > issued.revisions[namespace] else 0

        revision = controller.wait(renewed, RENEWAL_TIMEOUT_S, f"Certificate {namespace}/{name} renewed")
        leaf, _ca = controller.wait(
            functools.partial(_changed, api, namespace, rendered.tls["secret_name"], first),
            30,
            f"Secret {namespace}/{rendered.tls['secret_name']} holding the renewed certificate",
        )
        assert leaf.serial_number != first.serial_number
        assert leaf.public_key() != first.public_key(), "rotationPolicy Always: a new key at each renewal"
        assert leaf.not_valid_before_utc > first.not_valid_before_utc
        leaf.verify_directly_issued_by(issued.ca)
        assert condition(certificate(api, namespace, name), "Ready").get("status") == "True"
        print(f"cert-manager: {namespace}/{name} renewed (revision {revision}), serial {leaf.serial_number:x}")


def test_controller_had_every_permission_it_needed(issued: Issued, controller: Controller) -> None:
    """The controller ran as the role's ServiceAccount; a missing RBAC rule shows as forbidden."""
    log = controller.process.log_path.read_text()[controller.process.log_offset :]
    forbidden = [line for line in log.splitlines() if "forbidden" in line.lower()]
    assert not forbidden, "cert-manager was refused by RBAC:\n" + "\n".join(forbidden[:10])


def _changed(
    api: client.ApiClient, namespace: str, name: str, first: x509.Certificate
) -> tuple[x509.Certificate, x509.Certificate] | None:
    leaf, ca = secret_certificates(api, namespace, name)
    return (leaf, ca) if leaf.serial_number != first.serial_number else None
