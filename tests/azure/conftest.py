"""Fixtures for the azure layer's tests: a fake Azure over HTTPS and an environment pointing at it.

See fake_azure/ for what is faked and why (no Azure emulator is available as a Go module), and
fake_subscription.py for the ids and names the tests use.
"""

from __future__ import annotations

import os
import subprocess
import typing as t
from pathlib import Path

import certifi
import pytest
from fake_azure import FakeAzure, rbac  # on sys.path (no __init__.py here: "azure" is the SDK's package)
from fake_subscription import (
    CLUSTER,
    DEPLOYER_ID,
    DEPLOYER_SECRET,
    GROUP_COLORS,
    GROUP_OPS,
    KEYVAULT,
    RESOURCE_GROUP,
    SECOND_HOST,
    SITE_HOST,
    SITE_KEYVAULT,
    SUBSCRIPTION,
    TENANT,
    USER_ALICE,
)
from private_testbed import SiteTestbed
from support.playbook import REPO, Playbook

# What docs/AZURE.md asks of the deploying principal, and all the fake's test principal gets.
DEPLOYER_ROLES = ("Contributor", "User Access Administrator")
DEPLOYER_GRAPH_PERMISSIONS = (
    "Application.ReadWrite.OwnedBy",
    "AppRoleAssignment.ReadWrite.All",
    "Application.Read.All",
)

CACHE = Path(os.environ.get("ZEROTRUST_AKS_CACHE", Path.home() / ".cache" / "zerotrust-aks"))
# What applying to the local testbed needs (apply mode, no admission webhook), shared with
# scripts/demo and the Molecule testbed scenario.
TESTBED_INVENTORY = REPO / "inventories" / "testbed"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FakeAzure]:
    azure = FakeAzure(
        tmp_path_factory.mktemp("fake-azure"),
        tenant_id=TENANT,
        subscription_id=SUBSCRIPTION,
        client_id=DEPLOYER_ID,
        client_secret=DEPLOYER_SECRET,
        # The module runs ~25 playbooks; on a loaded machine that passed 30 minutes and the fake
        # stopped under the last test. It still stops by itself if pytest dies.
        lifetime=3600,
    ).start()
    azure.add_resource_group(RESOURCE_GROUP)
    azure.add_cluster(RESOURCE_GROUP, CLUSTER)
    # The deployer's documented roles (docs/AZURE.md "Permissions"): Contributor and User Access
    # Administrator on the resource group, nothing on the data plane (the collection grants that).
    group_id = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
    for role in DEPLOYER_ROLES:
        rbac.grant(azure, azure.deployer_object_id, role, group_id, "ServicePrincipal")
    azure.deployer_graph_roles = list(DEPLOYER_GRAPH_PERMISSIONS)
    azure.add_group(GROUP_COLORS, "colors-users")
    azure.add_group(GROUP_OPS, "platform-ops")
    azure.add_user(USER_ALICE, "Alice")
    yield azure
    azure.stop()


@pytest.fixture(scope="module")
def azure_env(fake: FakeAzure, ansible_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """azure.azcollection's environment credentials and cloud, pointed at the fake."""
    bundle = tmp_path_factory.mktemp("ca") / "bundle.pem"
    bundle.write_text(Path(certifi.where()).read_text() + fake.ca_file.read_text())
    env = dict(ansible_env)
    for name in list(env):
        if name.startswith(("AZURE_", "ANSIBLE_AZURE_")):
            del env[name]
    env.update(
        AZURE_CLIENT_ID=DEPLOYER_ID,
        AZURE_SECRET=DEPLOYER_SECRET,
        AZURE_TENANT=TENANT,
        AZURE_SUBSCRIPTION_ID=SUBSCRIPTION,
        AZURE_CLOUD_ENVIRONMENT=fake.base_url,
        AZURE_DISABLE_INSTANCE_DISCOVERY="true",
        REQUESTS_CA_BUNDLE=str(bundle),
        SSL_CERT_FILE=str(bundle),
        # azure.azcollection 3.12 cannot resolve a cloud_environment URL on its own: see shim/sitecustomize.py.
        PYTHONPATH=str(Path(__file__).resolve().parent / "shim"),
        # The shim resolves *.fake.test names (new vaults) from this file, after their DNS lag.
        ZEROTRUST_AKS_FAKE_AZURE_HOSTS=str(fake.hosts_file),
        # The virtualenv is installed without bytecode and azure_rm_common imports every Azure SDK:
        # compiling them on each module run costs ~15 s of CPU. Cache the bytecode outside the repo.
        PYTHONPYCACHEPREFIX=str(CACHE / "pycache"),
        HOME=env.get("HOME", str(Path.home())),
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


@pytest.fixture(scope="module")
def azure_playbook(azure_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Playbook:
    """playbooks/azure.yml with the test inventory variables (as an extra-vars file).

    The defaults that matter are not set: identity mode workload, client auth secret, one app
    role (colors.user) with assignment required. One protected app on a second host, so the app
    registration needs two redirect URIs; one group assigned to the role.
    """
    vars_file = tmp_path_factory.mktemp("vars") / "azure.yml"
    vars_file.write_text(
        "\n".join(
            [
                "zerotrust_aks_platform: aks",
                f"zerotrust_aks_resource_group: {RESOURCE_GROUP}",
                f"zerotrust_aks_cluster_name: {CLUSTER}",
                f"zerotrust_aks_keyvault_name: {KEYVAULT}",
                f"zerotrust_aks_host: {SITE_HOST}",
                f"zerotrust_aks_apps: [{{name: shop, namespace: shop, host: {SECOND_HOST}}}]",
                "zerotrust_aks_app_role_assignments:",
                f"  - {{principal_id: {GROUP_COLORS}, principal_type: Group, role: colors.user}}",
                "zerotrust_aks_group_membership_claims: SecurityGroup",
                # Poll the fake's AKS operations every 2 s rather than 10 (the role's default).
                "aks_keyvault_addon_poll_interval: 2",
                "",
            ]
        )
    )
    return Playbook("playbooks/azure.yml", env=azure_env, extra_vars_files=[vars_file])


# site.yml end to end (test_site_end_to_end.py): the azure layer against the fake, the cluster
# layer on a private local testbed (testbed/README.md) on which the SecretProviderClass CRD is
# installed as the AKS add-on would.

TESTBED = REPO / "testbed" / "testbed"
SPC_CRD = Path(__file__).resolve().parent / "crds" / "secrets-store.csi.x-k8s.io_secretproviderclasses.yaml"


@pytest.fixture(scope="module")
def site_testbed(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[SiteTestbed]:
    """A testbed of this module's own (private state dir, 30 min lifetime), always taken down."""
    state = tmp_path_factory.mktemp("testbed") / "state"
    env = {**os.environ, "ZEROTRUST_AKS_TESTBED_DIR": str(state)}

    def testbed(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(TESTBED), *args], env=env, capture_output=True, text=True, timeout=1800, check=check)

    try:
        up = testbed("up", "--lifetime", "30m", check=False)
        if up.returncode != 0:
            raise AssertionError(f"testbed up failed ({up.returncode})\n{up.stdout}\n{up.stderr}")
        exports = dict(line.removeprefix("export ").split("=", 1) for line in testbed("env").stdout.splitlines())
        yield SiteTestbed(
            state_dir=state,
            kubeconfig=Path(exports["KUBECONFIG"]),
            audit_log=Path(exports["ZEROTRUST_AKS_TESTBED_AUDIT_LOG"]),
            kubectl=Path(exports["ZEROTRUST_AKS_KUBECTL"]),
        )
    finally:
        testbed("down", check=False)


@pytest.fixture(scope="module")
def secret_provider_class_crd(site_testbed: SiteTestbed) -> str:
    """Install the Secrets Store CSI driver's SecretProviderClass CRD, as the AKS add-on does."""
    site_testbed.kubectl_run("apply", "--server-side", "-f", str(SPC_CRD))
    name = "secretproviderclasses.secrets-store.csi.x-k8s.io"
    site_testbed.kubectl_run("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
    return name


@pytest.fixture(scope="module")
def site_playbook(
    azure_env: dict[str, str],
    site_testbed: SiteTestbed,
    secret_provider_class_crd: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Playbook:
    """site.yml with the aks profile in apply mode: Azure = the fake, cluster = the testbed.

    Inventory: inventories/testbed (apply to the testbed) plus the aks profile's inputs. Only
    inputs are in the inventory, so the azure layer's outputs (set_fact) reach the cluster
    layer; extra vars would override them.
    """
    inventory = tmp_path_factory.mktemp("site-inventory") / "aks.yml"
    inventory.write_text(
        "\n".join(
            [
                "all:",
                "  vars:",
                "    zerotrust_aks_platform: aks",
                f"    zerotrust_aks_host: {SITE_HOST}",
                f"    zerotrust_aks_resource_group: {RESOURCE_GROUP}",
                f"    zerotrust_aks_cluster_name: {CLUSTER}",
                f"    zerotrust_aks_keyvault_name: {SITE_KEYVAULT}",
                "    zerotrust_aks_identity_mode: addon",
                "    zerotrust_aks_app_role_assignments:",
                f"      - {{principal_id: {GROUP_COLORS}, principal_type: Group, role: colors.user}}",
                "",
            ]
        )
    )
    env = dict(
        azure_env,
        K8S_AUTH_KUBECONFIG=str(site_testbed.kubeconfig),
        KUBECONFIG=str(site_testbed.kubeconfig),
        ZEROTRUST_AKS_TESTBED_DIR=str(site_testbed.state_dir),
    )
    for name in list(env):
        if name.startswith("K8S_AUTH_") and name != "K8S_AUTH_KUBECONFIG":
            del env[name]
    return Playbook("site.yml", env=env, inventory=[TESTBED_INVENTORY, inventory], timeout=1200)
