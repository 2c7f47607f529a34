"""Fixtures of the gateway suite: a private testbed with the stack applied, and the edge running.

The suite runs only inside a private network + mount + PID namespace (``tests/gateway/run``,
the ``gateway`` stage of scripts/test): see README.md. Elsewhere every test is skipped with a
pointer to the runner — unless ``ZEROTRUST_AKS_GATEWAY_NETNS=1`` (the runner sets it), where
that is an error.

Session fixtures, in order (each usable on its own):

- ``gateway_testbed``: ``testbed/testbed up --cert-manager --cert-manager-crds`` with a state
  folder of the session's own, on the namespace's 127.0.0.1: the control plane and cert-manager's
  real controllers (the cluster's cert-manager, which the collection does not install here: kwok
  runs no containers); taken down at the end (and its processes die with the namespace anyway).
  ``module_testbed`` is a plain one of a module's own, for a module that changes cluster-wide
  state or runs controllers of its own (test_cert_manager.py: its fast-renewing Certificates);
- ``gateway_playbook``: site.yml bound to that testbed with ``-i inventories/local -i
  inventories/testbed -e @tests/gateway/stack.yml`` (call it with more ``extra_vars``);
- ``stack_applied``: the app namespaces of ``apps.yml`` and cert-manager's namespace, then the
  stack converged once (TLS by cert-manager: the collection's CA issuer chain, site Certificate);
- ``cluster_state``: the objects read back once every Pod has an IP and every Service its endpoints;
- ``edge``: Traefik, oauth2-proxy, the IdP and the stand-in apps running (edge.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import typing as t
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml
from authflow import harness
from controlplane import certmanager
from kubernetes import client, config
from support.playbook import REPO, Playbook

from .cluster import ClusterState, missing_certificates, wait_for_endpoints
from .edge import GatewayEdge, api_url_and_ca, gateway_edge
from .podnet import NotInPrivateNamespace, check_private_namespace

HERE = Path(__file__).resolve().parent
TESTBED = REPO / "testbed" / "testbed"
STACK_VARS = HERE / "stack.yml"
APPS = HERE / "apps.yml"
RUNNER = "tests/gateway/run"
INVENTORIES = [REPO / "inventories" / "local", REPO / "inventories" / "testbed"]

# The IdP's users: who may enter which app (stack.yml: zerotrust-users everywhere; the shop
# also needs shop-admins, the wiki wiki-readers or wiki-editors).
JANE = harness.IdpUser("jane", "jane-pw", "jane@example.com", groups=("zerotrust-users",))
ALICE = harness.IdpUser("alice", "alice-pw", "alice@example.com", groups=("zerotrust-users", "shop-admins"))
BOB = harness.IdpUser("bob", "bob-pw", "bob@example.com", groups=("zerotrust-users", "wiki-editors"))
# In the shop's group but not in the stack's: refused everywhere.
MALLORY = harness.IdpUser("mallory", "mallory-pw", "mallory@example.com", groups=("contractors", "shop-admins"))
USERS = (JANE, ALICE, BOB, MALLORY)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    ours = [item for item in items if Path(str(item.fspath)).is_relative_to(HERE)]
    try:
        check_private_namespace()
    except NotInPrivateNamespace as e:
        if os.environ.get("ZEROTRUST_AKS_GATEWAY_NETNS") == "1":
            raise
        skip = pytest.mark.skip(reason=f"{e}; run {RUNNER} (or scripts/test gateway)")
        for item in ours:
            item.add_marker(skip)


@dataclasses.dataclass(frozen=True)
class GatewayTestbed:
    """The session's private testbed (a real API server, kwok Nodes) in the namespace."""

    state_dir: Path
    kubeconfig: Path
    kubectl: Path
    api: client.ApiClient

    def kubectl_run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, timeout=timeout, check=True,
        )  # fmt: skip

    def env(self) -> dict[str, str]:
        return {
            "K8S_AUTH_KUBECONFIG": str(self.kubeconfig),
            "KUBECONFIG": str(self.kubeconfig),
            "ZEROTRUST_AKS_TESTBED_DIR": str(self.state_dir),
        }


def tool_path(tool: str) -> Path:
    """A testbed tool the runner built before entering the namespace (no network in here)."""
    found = subprocess.run(
        [str(REPO / "testbed" / "build"), "--print-path", tool], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        pytest.fail(f"{tool} is not built: {RUNNER} builds the tools before entering the namespace (testbed/build)")
    return Path(found.stdout.strip())


@contextlib.contextmanager
def private_testbed(
    tmp_path_factory: pytest.TempPathFactory, name: str, options: Sequence[str] = ()
) -> Iterator[GatewayTestbed]:
    """``testbed/testbed up [OPTIONS]`` with a state folder of its own (in pytest's tmp), taken
    down on exit."""
    state = tmp_path_factory.mktemp(name) / "state"
    env = {**os.environ, "ZEROTRUST_AKS_TESTBED_DIR": str(state)}

    def testbed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(TESTBED), *args], env=env, capture_output=True, text=True, timeout=600, check=False)

    try:
        up = testbed("up", "--lifetime", os.environ.get("ZEROTRUST_AKS_TESTBED_LIFETIME", "30m"), *options)
        if up.returncode != 0:
            raise AssertionError(f"testbed up failed ({up.returncode})\n{up.stdout}\n{up.stderr}")
        exports = dict(line.removeprefix("export ").split("=", 1) for line in testbed("env").stdout.splitlines())
        kubeconfig = Path(exports["KUBECONFIG"])
        api: client.ApiClient = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        with api:
            yield GatewayTestbed(state, kubeconfig, Path(exports["ZEROTRUST_AKS_KUBECTL"]), api)
    finally:
        testbed("down")


@pytest.fixture(scope="session")
def gateway_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayTestbed]:
    """The session's testbed: the stack is applied to it and the edge serves it. cert-manager's
    controllers run with it (as the testbed's admin, with the CRDs of roles/cert_manager applied
    first): they issue the site certificate the edge serves (stack.yml: cert-manager mode). Tests
    that change cluster-wide state or run controllers of their own use ``module_testbed``."""
    with private_testbed(tmp_path_factory, "gateway-testbed", ["--cert-manager", "--cert-manager-crds"]) as testbed:
        yield testbed


@pytest.fixture(scope="module")
def module_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayTestbed]:
    """A testbed of the test module's own (another API server in the namespace, about 10 s to
    start; no cert-manager, no Traefik), taken down after the module."""
    with private_testbed(tmp_path_factory, "module-testbed") as testbed:
        yield testbed


@pytest.fixture(scope="session")
def gateway_playbook(ansible_env: dict[str, str], gateway_testbed: GatewayTestbed) -> Playbook:
    """site.yml against the private testbed with the suite's stack (``stack.yml``)."""
    env = {k: v for k, v in ansible_env.items() if not k.startswith("K8S_AUTH_")}
    env.update(gateway_testbed.env())
    return Playbook("site.yml", env=env, inventory=INVENTORIES, extra_vars_files=[STACK_VARS], timeout=900)


@pytest.fixture(scope="session")
def stack_vars() -> dict[str, t.Any]:
    loaded: dict[str, t.Any] = yaml.safe_load(STACK_VARS.read_text())
    return loaded


@pytest.fixture(scope="session")
def stack_applied(gateway_testbed: GatewayTestbed, gateway_playbook: Playbook) -> None:
    """The apps' namespaces (apps.yml) and cert-manager's, then the stack applied once (site.yml)."""
    gateway_testbed.kubectl_run("apply", "-f", str(APPS))
    # The namespace an installed cert-manager runs in, its cluster resource namespace: the tls
    # role puts the CA Certificate (and so the CA issuer's Secret) there. The testbed runs
    # cert-manager as a process, so nothing made it; stack.yml keeps the default namespace, the
    # one the testbed's controller is started with.
    gateway_testbed.kubectl_run("create", "namespace", certmanager.NAMESPACE)
    gateway_playbook()


@pytest.fixture(scope="session")
def cluster_state(gateway_testbed: GatewayTestbed, stack_applied: None) -> ClusterState:
    return wait_for_endpoints(gateway_testbed.api, timeout_s=120, expect=missing_certificates)


@pytest.fixture(scope="session")
def applied_objects(gateway_testbed: GatewayTestbed, stack_applied: None) -> harness.AppliedObjects:
    """The oauth2-proxy Deployment and its Secrets as applied (no Ingress with this edge)."""
    return harness.objects_from_cluster(gateway_testbed.kubeconfig)


@pytest.fixture(scope="session")
def binaries() -> harness.Binaries:
    return harness.Binaries(oauth2_proxy=str(tool_path("oauth2-proxy")), idp=str(tool_path("idp")))


@pytest.fixture(scope="session")
def edge(
    gateway_testbed: GatewayTestbed,
    cluster_state: ClusterState,
    applied_objects: harness.AppliedObjects,
    binaries: harness.Binaries,
    stack_vars: dict[str, t.Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayEdge]:
    work_dir = tmp_path_factory.mktemp("gateway-edge")
    api_url, api_ca = api_url_and_ca(gateway_testbed.kubeconfig, work_dir)
    host = stack_vars["zerotrust_aks_host"]
    ready = [(host, "/", 302), (host, "/oauth2/auth", 401)]
    ready += [(app["host"], "/", 302) for app in stack_vars["zerotrust_aks_apps"] if "host" in app]
    ready += [(host, app["path"], 302) for app in stack_vars["zerotrust_aks_apps"] if "path" in app]
    with gateway_edge(
        cluster_state,
        applied_objects,
        gateway_testbed.api,
        binaries=binaries,
        traefik_binary=str(tool_path("traefik")),
        api_url=api_url,
        api_ca=api_ca,
        work_dir=work_dir,
        host=host,
        users=USERS,
        ready_paths=ready,
    ) as running:
        print(f"\ngateway edge: logs in {running.log_dir}")
        yield running


@pytest.fixture
def browser(edge: GatewayEdge) -> harness.ScriptedBrowser:
    edge.check_running()
    return edge.browser()
