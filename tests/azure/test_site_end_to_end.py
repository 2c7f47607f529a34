"""site.yml end to end: the azure layer against the fake Azure, the cluster layer on the real local testbed.

ORDER-DEPENDENT: the tests share one fake Azure and one private testbed (module-scoped fixtures
in conftest.py) and must run in file order: first run, re-run, check mode, cookie rotation,
then the scan of every run's -vvv output. A later test fails (it never skips) when the run
before it did not happen. Every run is at -vvv so the last test scans the most verbose output.
The testbed has no CSI driver: the SecretProviderClass CRD is installed (as the AKS add-on
would), but nothing syncs Key Vault into Secrets; kwok marks the Pods Running regardless.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import typing as t

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fake_azure import FakeAzure
from fake_subscription import CLUSTER_ID, DEPLOYER_SECRET, SITE_HOST, SITE_KEYVAULT, TENANT
from observations import cluster_puts, fingerprints, vault_values, writes
from private_testbed import SiteTestbed
from support.playbook import Playbook, PlaybookRun

PART_OF = "app.kubernetes.io/part-of=zerotrust-aks"
CHECKSUM = "zerotrust.aks/secrets-checksum"
# Every kind the cluster layer applies (plus Secrets it makes): their resourceVersions show
# whether a run changed anything on the API server.
KINDS = (
    "namespaces,serviceaccounts,services,deployments,ingresses,networkpolicies,secrets,configmaps,"
    "roles,rolebindings,clusterroles,clusterrolebindings,ingressclasses,secretproviderclasses"
)
ADMIN = "zerotrust-aks-admin"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}

outputs: list[str] = []  # every run's output, scanned by the last test


def play(site_playbook: Playbook, fake: FakeAzure, *args: str) -> tuple[PlaybookRun, list[dict[str, t.Any]]]:
    """Run site.yml at -vvv; return the run and the requests the fake received."""
    start = len(fake.log)
    run = site_playbook(*args, verbosity=3)
    outputs.append(run.output)
    return run, fake.log[start:]


def kube(testbed: SiteTestbed, *args: str) -> t.Any:
    return json.loads(testbed.kubectl_run(*args, "-o", "json").stdout)


def oauth2_proxy_deployment(testbed: SiteTestbed) -> dict[str, t.Any]:
    return t.cast("dict[str, t.Any]", kube(testbed, "get", "deployment", "oauth2-proxy", "-n", "oauth2-proxy"))


def replica_sets(testbed: SiteTestbed) -> dict[str, dict[str, t.Any]]:
    found = kube(testbed, "get", "replicasets", "-n", "oauth2-proxy", "-l", "app.kubernetes.io/name=oauth2-proxy")
    return {rs["metadata"]["name"]: rs for rs in found["items"]}


def available(deployment: dict[str, t.Any]) -> bool:
    return any(
        c["type"] == "Available" and c["status"] == "True" for c in deployment.get("status", {}).get("conditions", [])
    )


def settled(testbed: SiteTestbed, timeout: float = 90) -> list[dict[str, t.Any]]:
    """Wait until every Deployment of the stack has finished rolling out (no status update pending)."""
    deadline = time.monotonic() + timeout
    while True:
        items: list[dict[str, t.Any]] = kube(testbed, "get", "deployments", "-A", "-l", PART_OF)["items"]
        pending = [
            d["metadata"]["name"]
            for d in items
            if not available(d)
            or d["status"].get("observedGeneration") != d["metadata"]["generation"]
            or not (
                d["spec"]["replicas"]
                == d["status"].get("replicas")
                == d["status"].get("updatedReplicas")
                == d["status"].get("readyReplicas")
                == d["status"].get("availableReplicas")
            )
        ]
        if items and not pending:
            return items
        if time.monotonic() > deadline:
            raise AssertionError(f"Deployments not rolled out after {timeout:.0f} s: {pending or 'none found'}")
        time.sleep(1)


def resource_versions(testbed: SiteTestbed) -> dict[str, str]:
    """kind/namespace/name -> resourceVersion of every object of the stack (no Secret value is read)."""
    settled(testbed)
    columns = "KIND:.kind,NS:.metadata.namespace,NAME:.metadata.name,RV:.metadata.resourceVersion"
    listing = testbed.kubectl_run("get", KINDS, "-A", "-l", PART_OF, "--no-headers", "-o", f"custom-columns={columns}")
    versions = {}
    for line in listing.stdout.splitlines():
        kind, namespace, name, version = line.split()
        versions[f"{kind}/{namespace}/{name}"] = version
    return versions


def audit_offset(testbed: SiteTestbed) -> int:
    return int(testbed.audit_log.stat().st_size)


def real_writes_since(testbed: SiteTestbed, offset: int) -> list[str]:
    """Writes the admin (= the playbook) sent since OFFSET that were not server-side dry runs."""
    with testbed.audit_log.open("rb") as log:
        log.seek(offset)
        events = [json.loads(line) for line in log.read().splitlines() if line.strip()]
    return [
        f"{e['verb']} {e['requestURI']}"
        for e in events
        if e["user"]["username"] == ADMIN and e["verb"] in WRITE_VERBS and "dryRun=All" not in e["requestURI"]
    ]


def secrets_checksum(found: dict[str, str]) -> str:
    """What the oauth2_proxy role puts in the pod template: sha256 of the fingerprints as to_json(sort_keys)."""
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()


def tls_private_key(testbed: SiteTestbed) -> tuple[list[str], list[str]]:
    """The TLS key's PEM lines that do not also encode its public half, and its private scalar as hex.

    A PKCS#8 EC key ends with the public point, which outputs may show (the public key is no
    secret): a line that happens to be part of the public key's PEM is not a leak.
    """
    key_b64 = testbed.kubectl_run(
        "get", "secret", "zerotrust-aks-tls", "-n", "oauth2-proxy", "-o", "jsonpath={.data.tls\\.key}"
    ).stdout
    pem = base64.b64decode(key_b64)
    key = serialization.load_pem_private_key(pem, password=None)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    lines = [
        line
        for line in pem.decode().splitlines()
        if "-----" not in line and len(line) >= 16 and line not in public_pem.replace("\n", "")
    ]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        scalar = key.private_numbers().private_value
    elif isinstance(key, rsa.RSAPrivateKey):
        scalar = key.private_numbers().d
    else:
        raise AssertionError(f"unexpected TLS key type {type(key).__name__}")
    raw = scalar.to_bytes((scalar.bit_length() + 7) // 8, "big")
    return lines, [raw.hex(), raw.hex(":"), base64.b64encode(raw).decode()]


def test_first_run_brings_the_azure_outputs_to_the_cluster(
    site_playbook: Playbook, fake: FakeAzure, site_testbed: SiteTestbed
) -> None:
    run, requests = play(site_playbook, fake)
    assert run.failed == 0
    assert len(cluster_puts(requests)) == 1  # the add-on was enabled

    cluster = fake.resource(CLUSTER_ID)
    assert cluster is not None
    addon_identity = cluster["properties"]["addonProfiles"]["azureKeyvaultSecretsProvider"]["identity"]
    assert list(fake.vaults) == [SITE_KEYVAULT]

    spc = kube(site_testbed, "get", "secretproviderclass", "oauth2-proxy", "-n", "oauth2-proxy")
    parameters = spc["spec"]["parameters"]
    assert parameters["keyvaultName"] == SITE_KEYVAULT
    assert parameters["tenantId"] == TENANT == fake.tenant_id
    assert parameters["useVMManagedIdentity"] == "true"
    assert parameters["userAssignedIdentityID"] == addon_identity["clientId"]
    assert spc["spec"]["provider"] == "azure"
    # Every object the SecretProviderClass reads is one the azure layer stored in the vault.
    for name in ("oauth2-proxy-client-id", "oauth2-proxy-client-secret", "oauth2-proxy-cookie-secret"):
        assert f"objectName: {name}" in parameters["objects"]
        assert fake.vaults[SITE_KEYVAULT].secrets[name], name

    deployment = oauth2_proxy_deployment(site_testbed)
    assert available(deployment), deployment.get("status")
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    csi_volumes = [name for name, v in volumes.items() if "csi" in v]
    assert len(csi_volumes) == 1, volumes
    csi = volumes[csi_volumes[0]]["csi"]
    assert csi["driver"] == "secrets-store.csi.k8s.io"
    assert csi["volumeAttributes"]["secretProviderClass"] == spc["metadata"]["name"]
    mounts = [m for c in pod["containers"] for m in c.get("volumeMounts", []) if m["name"] == csi_volumes[0]]
    assert mounts and all(m.get("readOnly") for m in mounts), pod["containers"]
    args = pod["containers"][0]["args"]
    assert f"--oidc-issuer-url=https://login.microsoftonline.com/{TENANT}/v2.0" in args
    assert f"--redirect-url=https://{SITE_HOST}/oauth2/callback" in args

    # The fingerprints the azure layer printed are what the pod template's checksum is made of.
    found = fingerprints(run.output)
    annotation = deployment["spec"]["template"]["metadata"]["annotations"][CHECKSUM]
    assert annotation == secrets_checksum(found)
    settled(site_testbed)


def test_second_run_changes_nothing_anywhere(
    site_playbook: Playbook, fake: FakeAzure, site_testbed: SiteTestbed
) -> None:
    assert outputs, "the first run did not happen"
    first = fingerprints(outputs[-1])
    before = resource_versions(site_testbed)
    run, requests = play(site_playbook, fake)
    assert run.changed == 0, run.output[-3000:]
    assert run.failed == 0
    assert cluster_puts(requests) == []
    assert writes(requests) == []
    assert fingerprints(run.output) == first
    assert resource_versions(site_testbed) == before


def test_check_mode_changes_nothing(site_playbook: Playbook, fake: FakeAzure, site_testbed: SiteTestbed) -> None:
    assert len(outputs) >= 2, "the runs before did not happen"
    before = resource_versions(site_testbed)
    offset = audit_offset(site_testbed)
    run, requests = play(site_playbook, fake, "--check")
    assert run.failed == 0
    assert writes(requests) == []
    assert cluster_puts(requests) == []
    # The API server saw only reads and server-side dry runs from the playbook, and no object changed.
    assert real_writes_since(site_testbed, offset) == []
    assert resource_versions(site_testbed) == before


def test_cookie_rotation_rolls_oauth2_proxy(
    site_playbook: Playbook, fake: FakeAzure, site_testbed: SiteTestbed
) -> None:
    assert len(outputs) >= 3, "the runs before did not happen"
    before = fingerprints(outputs[-1])
    settled(site_testbed)
    old_annotation = oauth2_proxy_deployment(site_testbed)["spec"]["template"]["metadata"]["annotations"][CHECKSUM]
    old_replica_sets = replica_sets(site_testbed)
    assert len(old_replica_sets) == 1, list(old_replica_sets)

    run, requests = play(site_playbook, fake, "-e", "zerotrust_aks_rotate_cookie_secret=true")
    assert run.failed == 0
    assert run.changed > 0
    rotated = fingerprints(run.output)
    assert rotated["cookie_secret"] != before["cookie_secret"]
    assert rotated["client_secret"] == before["client_secret"]
    assert cluster_puts(requests) == []
    assert [w for w in writes(requests) if "oauth2-proxy-cookie-secret" in w]

    settled(site_testbed)
    deployment = oauth2_proxy_deployment(site_testbed)
    annotation = deployment["spec"]["template"]["metadata"]["annotations"][CHECKSUM]
    assert annotation != old_annotation
    assert annotation == secrets_checksum(rotated)
    new_replica_sets = {name: rs for name, rs in replica_sets(site_testbed).items() if name not in old_replica_sets}
    assert len(new_replica_sets) == 1, list(replica_sets(site_testbed))
    new = next(iter(new_replica_sets.values()))
    assert new["spec"]["template"]["metadata"]["annotations"][CHECKSUM] == annotation
    assert new["status"].get("readyReplicas") == deployment["spec"]["replicas"]
    # The old ReplicaSet is scaled down: the rollout replaced every Pod.
    for name in old_replica_sets:
        assert replica_sets(site_testbed)[name]["spec"]["replicas"] == 0, name

    # The rotated value is kept: the next normal run changes nothing and rolls nothing.
    run, requests = play(site_playbook, fake)
    assert run.changed == 0, run.output[-3000:]
    assert writes(requests) == []
    assert fingerprints(run.output) == rotated
    assert oauth2_proxy_deployment(site_testbed)["spec"]["template"]["metadata"]["annotations"][CHECKSUM] == annotation
    assert set(replica_sets(site_testbed)) == {*old_replica_sets, *new_replica_sets}


def test_no_secret_value_in_any_output(fake: FakeAzure, site_testbed: SiteTestbed) -> None:
    assert len(outputs) >= 5, "the runs before did not happen"
    assert all("<127.0.0.1>" in o or "ESTABLISH LOCAL CONNECTION" in o for o in outputs), "not -vvv output"
    # Every version of every Key Vault secret (the cookie secret before and after rotation, the
    # client secret) and the deployer's credential; GUIDs (client id) are public identifiers.
    values = [
        v for v in [*vault_values(fake), DEPLOYER_SECRET] if len(v) >= 8 and not re.fullmatch(r"[0-9a-f-]{36}", v)
    ]
    assert len(values) >= 3, values
    # The private key of the self-signed TLS certificate the cluster layer made and stored.
    key_lines, key_scalar = tls_private_key(site_testbed)
    values += [*key_lines, *key_scalar]
    for output in outputs:
        for value in values:
            assert value not in output
