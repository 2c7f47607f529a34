"""The Molecule kind scenario, checked without Docker (no kind cluster can run in CI).

What it applies is rendered and validated like the profiles (tests/render): the cluster layer
with the scenario's inventory, and the test IdP's objects from its own template. Its playbooks
are linted and syntax-checked. Then its configuration is read to show, by construction, the
three things a kind run depends on:
1. the issuer URL reaches the in-cluster IdP from pods (CoreDNS rewrites its host name to the
   IdP's Service, on the issuer's port) and from the host (kind publishes the IdP's NodePort on
   the issuer's port);
2. the controller's hostPorts are the ports kind-config.yml publishes, on the node kind labels
   ingress-ready, with the control-plane taint tolerated;
3. prepare waits for the admission webhook (caBundle written, an Ingress admitted) before any
   Ingress of the stack is applied.
"""

from __future__ import annotations

import re
import subprocess
import typing as t
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.playbook import REPO, run_playbook, without_cluster_access
from support.scans import assert_checkov_clean

with warnings.catch_warnings():
    # Python 3.11 (the project's) has it; bcrypt through libxcrypt, no extra package.
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

SCENARIO = REPO / "molecule" / "kind"
TESTBED = REPO / "molecule" / "testbed"
HOST_VARS_FILE = SCENARIO / "host_vars" / "localhost.yml"
KIND_CONFIG = SCENARIO / "kind-config.yml"
PREPARE = SCENARIO / "prepare.yml"
KUBERNETES_VERSION = "1.35.0"  # as tests/render/test_render.py
TEST_CLIENT_SECRET = "kind-scenario-render-only-0123456"  # noqa: S105 - rendered to a temp dir only


def load_yaml(path: Path) -> t.Any:
    return yaml.safe_load(path.read_text())


HOST_VARS: dict[str, t.Any] = load_yaml(HOST_VARS_FILE)


@dataclass
class KindRender:
    directory: Path
    objects: list[dict[str, t.Any]]
    corefile_rule: str

    def find(self, kind: str, name: str, namespace: str | None = None) -> dict[str, t.Any]:
        found = [
            o
            for o in self.objects
            if o["kind"] == kind
            and o["metadata"]["name"] == name
            and (namespace is None or o["metadata"].get("namespace") == namespace)
        ]
        assert len(found) == 1, f"{kind} {namespace}/{name}: {len(found)} rendered"
        return found[0]


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The inventory Molecule builds for the scenario: the local profile's group_vars and the
    scenario's host_vars (molecule.yml, provisioner.inventory.links)."""
    links = load_yaml(SCENARIO / "molecule.yml")["provisioner"]["inventory"]["links"]
    root = tmp_path_factory.mktemp("kind-inventory")
    (root / "hosts.yml").write_text("all:\n  hosts:\n    localhost:\n")
    for name in ("group_vars", "host_vars"):
        (root / name).symlink_to((SCENARIO / links[name]).resolve())
    return root


@pytest.fixture(scope="module")
def rendered(ansible_env: dict[str, str], inventory: Path, tmp_path_factory: pytest.TempPathFactory) -> KindRender:
    env = without_cluster_access(ansible_env, tmp_path_factory.mktemp("no-kube") / "does-not-exist")
    out = tmp_path_factory.mktemp("kind-render")
    run_playbook(
        REPO / "playbooks" / "cluster.yml",
        env=env,
        inventory=[inventory],
        extra_vars={"zerotrust_aks_render_dir": str(out / "cluster")},
        timeout=600,
    )
    run_playbook(
        REPO / "tests" / "kind" / "render_idp.yml",
        env=env,
        inventory=[inventory],
        extra_vars={
            "kind_scenario_dir": str(SCENARIO),
            "kind_render_dir": str(out),
            "zerotrust_aks_client_secret": TEST_CLIENT_SECRET,
        },
    )
    objects = [doc for path in sorted((out / "cluster").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]
    objects += [doc for doc in yaml.safe_load_all((out / "dex.yaml").read_text()) if doc]
    return KindRender(out, [o for o in objects if o], (out / "corefile-rewrite.txt").read_text())


def issuer() -> urllib.parse.SplitResult:
    # zerotrust_aks_oidc_issuer_url is a template of the kind_idp_* values: resolve it the same way.
    url = str(HOST_VARS["zerotrust_aks_oidc_issuer_url"])
    for key in ("kind_idp_host", "kind_idp_port"):
        url = url.replace("{{ " + key + " }}", str(HOST_VARS[key]))
    return urllib.parse.urlsplit(url)


def port_mappings() -> list[dict[str, t.Any]]:
    nodes = load_yaml(KIND_CONFIG)["nodes"]
    assert len(nodes) == 1, "the scenario's hostPorts and NodePort assume one node"
    mappings: list[dict[str, t.Any]] = nodes[0]["extraPortMappings"]
    return mappings


def host_port_for(container_port: int) -> int | None:
    return next((m["hostPort"] for m in port_mappings() if m["containerPort"] == container_port), None)


# --- rendered objects: schemas and scanner ----------------------------------------------------


def test_everything_the_scenario_applies_validates_strictly(rendered: KindRender) -> None:
    files = [*sorted((rendered.directory / "cluster").glob("*.yaml")), rendered.directory / "dex.yaml"]
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line for line in result.stdout.splitlines() if not line.startswith("INFO")]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
    assert result.stdout.count("INFO") == len(rendered.objects)


def test_checkov_finds_nothing(rendered: KindRender) -> None:
    assert_checkov_clean(rendered.directory)


def test_no_client_secret_is_in_the_repository() -> None:
    """Generated by create.yml into Molecule's ephemeral directory; host_vars only reads it."""
    value = str(HOST_VARS["zerotrust_aks_client_secret"])
    assert "MOLECULE_EPHEMERAL_DIRECTORY" in str(HOST_VARS["kind_state_dir"])
    assert "lookup('ansible.builtin.file', kind_state_dir ~ '/oidc-client-secret')" in value
    create = load_yaml(SCENARIO / "create.yml")[0]["tasks"]
    assert "lookup('ansible.builtin.password', kind_state_dir ~ '/oidc-client-secret'" in yaml.safe_dump(
        create, width=1000
    )


def test_the_idp_users_passwords_match_their_hashes() -> None:
    for user in HOST_VARS["kind_idp_users"]:
        assert crypt.crypt(user["password"], user["dex"]["hash"]) == user["dex"]["hash"], user["dex"]["email"]


def test_one_idp_user_is_allowed_and_one_is_not() -> None:
    allowed = set(HOST_VARS["zerotrust_aks_allowed_groups"])
    groups = [set(user["dex"]["groups"]) for user in HOST_VARS["kind_idp_users"]]
    assert any(g & allowed for g in groups) and any(not g & allowed for g in groups)


# --- 1. the issuer, the same from pods and from the host ---------------------------------------


def test_the_idp_serves_the_issuer_the_stack_uses(rendered: KindRender) -> None:
    secret = rendered.find("Secret", "dex-config", HOST_VARS["kind_idp_namespace"])
    config = yaml.safe_load(secret["stringData"]["config.yaml"])
    assert config["issuer"] == issuer().geturl()
    assert config["web"]["http"] == f"0.0.0.0:{issuer().port}"
    site_host = rendered.find("Ingress", "oauth2-proxy", "oauth2-proxy")["spec"]["rules"][0]["host"]
    assert [c["redirectURIs"] for c in config["staticClients"]] == [[f"https://{site_host}/oauth2/callback"]]
    deployment = rendered.find("Deployment", "oauth2-proxy", "oauth2-proxy")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--oidc-issuer-url={issuer().geturl()}" in args
    assert "groups" in next(a for a in args if a.startswith("--scope=")).split("=", 1)[1].split()


def test_coredns_rewrites_the_issuer_host_to_the_idp_service(rendered: KindRender) -> None:
    service = rendered.find("Service", HOST_VARS["kind_idp_service"], HOST_VARS["kind_idp_namespace"])
    fqdn = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local."
    rule = re.search(r"name regex (\S+) (\S+)", rendered.corefile_rule)
    answer = re.search(r"answer name (\S+) (\S+)", rendered.corefile_rule)
    assert rule and answer, rendered.corefile_rule
    assert re.fullmatch(rule.group(1), f"{issuer().hostname}.") and rule.group(2) == fqdn
    assert not re.fullmatch(rule.group(1), f"x{issuer().hostname}.")
    assert re.fullmatch(answer.group(1), fqdn) and answer.group(2) == f"{issuer().hostname}."
    # The Service answers on the issuer's port, and the pod listens on that port as well: the
    # oauth2-proxy NetworkPolicy admits the issuer's port, which it sees after the Service.
    port = next(p for p in service["spec"]["ports"] if p["port"] == issuer().port)
    dex = rendered.find("Deployment", HOST_VARS["kind_idp_service"], HOST_VARS["kind_idp_namespace"])
    container_ports = {p["name"]: p["containerPort"] for p in dex["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert container_ports[port["targetPort"]] == issuer().port
    assert all(k in dex["spec"]["template"]["metadata"]["labels"] for k in service["spec"]["selector"])
    policy = rendered.find("NetworkPolicy", "oauth2-proxy-egress", "oauth2-proxy")
    assert any(issuer().port in [p["port"] for p in rule.get("ports", [])] for rule in policy["spec"]["egress"])


def test_prepare_puts_the_rule_into_corefile_before_the_kubernetes_plugin() -> None:
    prepare = load_yaml(PREPARE)[0]
    patch = next(t for t in prepare["tasks"] if t["name"] == "Rewrite the IdP's host name to its Service in CoreDNS")
    assert ".:53 {\\n" in patch["kubernetes.core.k8s"]["definition"]["data"]["Corefile"]
    assert "corefile-rewrite.j2" in prepare["vars"]["__prepare_corefile_rule"]


def test_the_host_reaches_the_idp_on_the_issuer_port(rendered: KindRender) -> None:
    assert str(issuer().hostname).endswith(".localtest.me")  # 127.0.0.1 on the host
    service = rendered.find("Service", HOST_VARS["kind_idp_service"], HOST_VARS["kind_idp_namespace"])
    assert service["spec"]["type"] == "NodePort"
    node_port = next(p["nodePort"] for p in service["spec"]["ports"] if p["port"] == issuer().port)
    assert host_port_for(node_port) == issuer().port


# --- 2. hostPorts where kind publishes them -----------------------------------------------------


def test_controller_host_ports_are_what_kind_publishes(rendered: KindRender) -> None:
    deployment = rendered.find("Deployment", "ingress-nginx-controller")
    pod = deployment["spec"]["template"]["spec"]
    host_ports = {p["containerPort"]: p.get("hostPort") for p in pod["containers"][0]["ports"] if p.get("hostPort")}
    assert host_ports == {80: 80, 443: 443}
    for container_port in host_ports.values():
        assert host_port_for(container_port) == container_port
    assert all(m.get("listenAddress") == "127.0.0.1" for m in port_mappings())


def test_controller_runs_on_the_ingress_ready_node_despite_its_taint(rendered: KindRender) -> None:
    pod = rendered.find("Deployment", "ingress-nginx-controller")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "ingress-ready": "true"}
    patches = "".join(load_yaml(KIND_CONFIG)["nodes"][0]["kubeadmConfigPatches"])
    assert 'node-labels: "ingress-ready=true"' in patches
    tolerated = {(t["key"], t["effect"]) for t in pod["tolerations"]}
    assert ("node-role.kubernetes.io/control-plane", "NoSchedule") in tolerated


def test_the_controller_namespace_admits_host_ports(rendered: KindRender) -> None:
    labels = rendered.find("Namespace", "ingress-nginx")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


# --- 3. the webhook is awaited before the stack's Ingresses -------------------------------------


def test_prepare_waits_for_the_webhook_before_the_converge_applies_ingresses() -> None:
    molecule = load_yaml(SCENARIO / "molecule.yml")
    sequence = molecule["scenario"]["test_sequence"]
    assert sequence.index("prepare") < sequence.index("converge")
    tasks = load_yaml(PREPARE)[0]["tasks"]
    names = [task["name"] for task in tasks]
    apply = next(
        i
        for i, task in enumerate(tasks)
        if task.get("ansible.builtin.include_role", {}).get("name") == "zerotrust.aks.manifests"
    )
    # Only the controller's objects: no Ingress of the stack goes in before the wait.
    assert tasks[apply]["vars"] == {"manifests_objects": "{{ ingress_nginx_manifests }}"}
    wait = names.index("Wait for the certgen patch Job to write the webhook's caBundle")
    assert tasks[wait]["kubernetes.core.k8s_info"]["kind"] == "ValidatingWebhookConfiguration"
    assert "caBundle" in tasks[wait]["until"] and tasks[wait]["retries"] * tasks[wait]["delay"] >= 300
    probe = names.index("Create a probe Ingress through the admission webhook until it is admitted")
    assert "succeeded" in tasks[probe]["until"]
    assert apply < wait < probe


# --- shared with testbed, lint ------------------------------------------------------------------


def test_kind_shares_converge_and_verify_with_testbed() -> None:
    kind, testbed = load_yaml(SCENARIO / "molecule.yml"), load_yaml(TESTBED / "molecule.yml")
    for step in ("converge", "verify", "side_effect"):
        assert kind["provisioner"]["playbooks"][step] == testbed["provisioner"]["playbooks"][step], step
    assert kind["verifier"]["directory"] == testbed["verifier"]["directory"] == "../shared/tests"
    extra = kind["verifier"]["additional_files_or_dirs"]
    assert [(SCENARIO / "../shared/tests" / path).resolve() for path in extra] == [
        SCENARIO / "tests" / "test_kind_login.py"
    ]


PLAYBOOKS = [
    "create.yml",
    "prepare.yml",
    "destroy.yml",
    "../shared/converge.yml",
    "../shared/verify-objects.yml",
    "../shared/teardown.yml",
]


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_the_scenario_playbooks_pass_syntax_check(ansible_env: dict[str, str], inventory: Path, playbook: str) -> None:
    run_playbook(SCENARIO / playbook, "--syntax-check", env=ansible_env, inventory=[inventory])


def test_yamllint_passes() -> None:
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "yamllint"), "--strict", "molecule/kind", "molecule/shared", "tests/kind"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_passes(ansible_env: dict[str, str]) -> None:
    result = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "ansible-lint"),
            "--strict",
            "molecule/kind",
            "molecule/shared",
            "tests/kind/render_idp.yml",
        ],
        cwd=REPO,
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
