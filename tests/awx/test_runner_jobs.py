"""The collection run the way AWX / Automation Platform runs it: jobs of ansible-runner in a private data dir.

What AWX does for a job (awx/main/tasks/jobs.py, BaseTask.run, RunJob) and what is done here:

- Project update: a plain checkout of the project, then ``ansible-galaxy collection install -r
  collections/requirements.yml`` into ``requirements_collections``, which AWX copies into the
  job's private data dir next to ``project/`` (``sync_and_copy``). Here: ``git clone`` of this
  repository's HEAD (no ``build/collections`` link, no bootstrap) and the same install command.
- ``env/envvars``: AWX's ``build_env`` (its ``ANSIBLE_*`` settings, ``JOB_ID``,
  ``ANSIBLE_COLLECTIONS_PATH`` = requirements_collections first, then the project's
  ansible.cfg value, then the defaults), the "Extra Environment Variables" setting
  (``AWX_TASK_ENV``) and what the job's credentials inject: Microsoft Azure Resource Manager
  (``AZURE_SUBSCRIPTION_ID``, ``AZURE_CLIENT_ID``, ``AZURE_SECRET``, ``AZURE_TENANT``, and
  ``AZURE_CLOUD_ENVIRONMENT`` from its cloud environment field) and OpenShift or Kubernetes API
  Bearer Token (``K8S_AUTH_HOST``, ``K8S_AUTH_API_KEY``, ``K8S_AUTH_VERIFY_SSL``,
  ``K8S_AUTH_SSL_CA_CERT`` naming a file AWX writes into ``env/``). AWX passes the same dict to
  ansible-runner as ``envvars=`` with ``suppress_env_files``; the file is the documented
  equivalent. No ``KUBECONFIG``, and ``HOME`` has no ``.kube``: the cluster is reached through
  the credential only. The private CA of the fake and the testbed and the fake's cloud URL
  shim (tests/azure/shim) are "Extra Environment Variables", as an AWX admin with a private CA
  would set them.
- ``env/extravars``: the workflow's extra vars and survey (awx/surveys/azure.json as
  playbooks/controller.yml sets it up: the answers given here, the defaults of the others) over the
  artifacts of the workflow's earlier nodes (``WorkflowJobNode.get_job_kwargs``).
  ``env/settings`` and ``env/cmdline`` as AWX writes them (``-vvv``: the most verbose output is
  what is scanned for secrets); ``inventory/hosts`` is an executable script printing the
  inventory as JSON (``write_inventory_file``). No ``env/passwords``: AWX only answers
  ssh/become/vault prompts, and these jobs have none. Each job gets the credentials of its job
  template in playbooks/controller.yml: azure the Azure one, cluster/verify/teardown the Kubernetes one.
- Artifacts: ansible-runner's ``awx_display`` callback puts ``set_stats`` data (per_host: false)
  into the ``playbook_on_stats`` event as ``event_data.artifact_data``; AWX stores that as the
  job's artifacts (awx/main/tasks/callback.py). There is no separate artifacts file.

Jobs: the workflow azure -> cluster -> verify, the cluster job again (changed=0), teardown.
Azure is the fake (tests/azure/fake_azure); the cluster a private testbed with the
SecretProviderClass CRD installed as the AKS add-on would, and no CSI driver: before verify, the
test makes the Secrets the driver would sync from Key Vault. The Kubernetes credential is a
ServiceAccount bound to docs/rbac's roles, with a token from the TokenRequest API; the audit log
must show none of its requests refused. ORDER-DEPENDENT: the tests share the jobs (module
fixtures) and run in file order; a later test fails, never skips, when the jobs before it failed.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml
from support.playbook import REPO, VENV_BIN, PlaybookRun

AZURE_TESTS = REPO / "tests" / "azure"
if str(AZURE_TESTS) not in sys.path:
    sys.path.insert(0, str(AZURE_TESTS))

from fake_azure import FakeAzure
from fake_subscription import (
    CLUSTER,
    DEPLOYER_ID,
    DEPLOYER_SECRET,
    GROUP_COLORS,
    RESOURCE_GROUP,
    SITE_HOST,
    SUBSCRIPTION,
    TENANT,
)
from observations import vault_values
from private_testbed import SiteTestbed

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))  # not a package: tests/support is one
from awx_job import AZURE_CREDENTIAL, K8S_CREDENTIAL, Controller, Credential, Job, project_update


def _azure_fixtures() -> t.Any:
    """tests/azure/conftest.py under a name of its own: its fake Azure and private testbed fixtures."""
    spec = importlib.util.spec_from_file_location("zerotrust_aks_azure_fixtures", AZURE_TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_fixtures = _azure_fixtures()
fake = _fixtures.fake
azure_env = _fixtures.azure_env
site_testbed = _fixtures.site_testbed
secret_provider_class_crd = _fixtures.secret_provider_class_crd

RUNNER = VENV_BIN / "ansible-runner"
KEYVAULT = "zt-aks-kv-awx"
RBAC = REPO / "docs" / "rbac"
SA_NAMESPACE = SA_NAME = "zerotrust-aks-deployer"
ESCALATION_PROBE = "zerotrust-aks-escalation-probe"  # the ClusterRole the deployer is refused without ingress-nginx.yml
# The answers to the workflow's survey (awx/surveys/azure.json, as playbooks/controller.yml sets it up);
# AWX adds the defaults of the questions not answered.
SURVEY_ANSWERS: dict[str, t.Any] = {
    "zerotrust_aks_host": SITE_HOST,
    "zerotrust_aks_resource_group": RESOURCE_GROUP,
    "zerotrust_aks_cluster_name": CLUSTER,
    "zerotrust_aks_keyvault_name": KEYVAULT,
    "zerotrust_aks_identity_mode": "addon",
}
WORKFLOW_EXTRA_VARS = {"zerotrust_aks_platform": "aks"}  # playbooks/controller.yml's workflow and job templates
# The AWX inventory's variables: run on the execution node itself; who may sign in. The testbed
# has no admission webhook backend (inventories/testbed); AKS gets the webhook.
INVENTORY_VARS = {
    "ansible_connection": "local",
    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
    "ingress_nginx_admission_webhook": False,
    "zerotrust_aks_app_role_assignments": [
        {"principal_id": GROUP_COLORS, "principal_type": "Group", "role": "colors.user"}
    ],
}
# Credentials of each job template (playbooks/controller.yml): only the azure layer calls Azure.
AZURE = "azure"
KUBERNETES = "kubernetes"
# What an AWX admin would put into "Extra Environment Variables" for this fake: its CA, the
# shim that lets azure.azcollection 3.12 use a cloud_environment URL, and a bytecode cache.
TASK_ENV_FROM_AZURE_ENV = (
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "PYTHONPATH",
    "PYTHONPYCACHEPREFIX",
    "AZURE_DISABLE_INSTANCE_DISCOVERY",
    # The test shim resolves the fake's new vault names from this file (after their DNS lag).
    "ZEROTRUST_AKS_FAKE_AZURE_HOSTS",
)


def kubectl_admin(testbed: SiteTestbed, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(testbed.kubectl), f"--kubeconfig={testbed.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


class Cluster(t.NamedTuple):
    """The bearer token credential's inputs: the API server, its CA and the ServiceAccount token."""

    host: str
    ca_cert: str
    token: str


@pytest.fixture(scope="module")
def deployer(site_testbed: SiteTestbed, secret_provider_class_crd: str) -> Cluster:
    """The ServiceAccount of docs/rbac (applied as documented) and a token from the TokenRequest API."""
    kubectl_admin(site_testbed, "apply", "--server-side", "-f", str(RBAC))
    token = kubectl_admin(
        site_testbed, "create", "token", SA_NAME, "-n", SA_NAMESPACE, "--duration", "1h"
    ).stdout.strip()
    config = yaml.safe_load(site_testbed.kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    if "certificate-authority-data" in cluster:
        ca_cert = base64.b64decode(cluster["certificate-authority-data"]).decode()
    else:
        ca_cert = (site_testbed.kubeconfig.parent / cluster["certificate-authority"]).read_text()
    return Cluster(host=cluster["server"], ca_cert=ca_cert, token=token)


@pytest.fixture(scope="module")
def controller(
    tmp_path_factory: pytest.TempPathFactory, fake: FakeAzure, azure_env: dict[str, str], deployer: Cluster
) -> Controller:
    """The project updated as AWX updates it, and the job environment its credentials make."""
    if not RUNNER.exists():
        pytest.fail(f"{RUNNER} is missing: requirements/main.lock must install ansible-runner (scripts/bootstrap)")
    root = tmp_path_factory.mktemp("awx")
    cache = root / "project-cache"
    cache.mkdir()
    project_update(REPO, cache, VENV_BIN)
    credentials = {
        # "Microsoft Azure Resource Manager": client, secret, tenant, subscription, cloud environment.
        AZURE: Credential(
            env={
                "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                "AZURE_CLIENT_ID": DEPLOYER_ID,
                "AZURE_SECRET": DEPLOYER_SECRET,
                "AZURE_TENANT": TENANT,
                "AZURE_CLOUD_ENVIRONMENT": fake.base_url,
            },
            files={},
        ),
        # "OpenShift or Kubernetes API Bearer Token": host, token, verify SSL, CA certificate (a file).
        KUBERNETES: Credential(
            env={"K8S_AUTH_HOST": deployer.host, "K8S_AUTH_API_KEY": deployer.token, "K8S_AUTH_VERIFY_SSL": "True"},
            files={"K8S_AUTH_SSL_CA_CERT": deployer.ca_cert},
        ),
    }
    task_env = {name: azure_env[name] for name in TASK_ENV_FROM_AZURE_ENV if name in azure_env}
    return Controller(root, cache, VENV_BIN, task_env, credentials, INVENTORY_VARS)


def workflow_extra_vars(controller: Controller, ancestors: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """A workflow node's extra vars: its ancestors' artifacts, then the workflow's extra vars and
    survey (answers, and the defaults of the questions not answered), which win."""
    spec = json.loads((controller.project_cache / "project" / "awx" / "surveys" / "azure.json").read_text())["spec"]
    questions = {q["variable"]: q for q in spec}
    assert set(SURVEY_ANSWERS) <= set(questions), set(SURVEY_ANSWERS) - set(questions)
    unanswered = [name for name, q in questions.items() if q.get("required") and name not in SURVEY_ANSWERS]
    assert not unanswered, f"required survey questions not answered: {unanswered}"
    defaults = {name: q["default"] for name, q in questions.items() if q.get("default") not in (None, "")}
    return {**ancestors, **WORKFLOW_EXTRA_VARS, **defaults, **SURVEY_ANSWERS}


def secret_values(fake: FakeAzure, deployer: Cluster, testbed: SiteTestbed) -> list[str]:
    """Every secret the jobs handled: Key Vault secrets (client secret, cookie secret), the Azure
    credential's secret, the ServiceAccount token, the TLS private key's PEM lines."""
    values = [
        v for v in [*vault_values(fake), DEPLOYER_SECRET] if len(v) >= 8 and not re.fullmatch(r"[0-9a-f-]{36}", v)
    ]
    assert len(values) >= 3, "the fake holds fewer secrets than the azure layer makes"
    key_b64 = kubectl_admin(
        testbed, "get", "secret", "zerotrust-aks-tls", "-n", "oauth2-proxy", "-o", "jsonpath={.data.tls\\.key}"
    ).stdout
    pem = base64.b64decode(key_b64).decode()
    key_lines = [line for line in pem.splitlines() if "-----" not in line and len(line) >= 16]
    return [*values, deployer.token, *key_lines]


def sync_key_vault_secrets(testbed: SiteTestbed, fake: FakeAzure) -> list[str]:
    """Do what the Secrets Store CSI driver does on AKS once a pod mounts the volume (the
    testbed has no driver): make each Secret the SecretProviderClass's secretObjects name, from
    the current versions of the Key Vault secrets its objects read."""
    spc = json.loads(kubectl_admin(testbed, "get", "secretproviderclasses", "-A", "-o", "json").stdout)["items"]
    assert len(spc) == 1, [s["metadata"]["name"] for s in spc]
    parameters = spc[0]["spec"]["parameters"]
    vault = fake.vaults[parameters["keyvaultName"]]
    objects = [yaml.safe_load(entry) for entry in yaml.safe_load(parameters["objects"])["array"]]
    values = {o.get("objectAlias") or o["objectName"]: vault.secrets[o["objectName"]][-1]["value"] for o in objects}
    made = []
    for secret in spc[0]["spec"]["secretObjects"]:
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": secret["type"],
            "metadata": {
                "name": secret["secretName"],
                "namespace": spc[0]["metadata"]["namespace"],
                "labels": {**secret.get("labels", {}), "secrets-store.csi.k8s.io/managed": "true"},
            },
            "data": {d["key"]: base64.b64encode(values[d["objectName"]].encode()).decode() for d in secret["data"]},
        }
        kubectl_admin(
            testbed,
            "apply",
            "--server-side",
            "--field-manager=secrets-store-csi-driver",
            "-f",
            "-",
            stdin=json.dumps(manifest),
        )
        made.append(secret["secretName"])
    return made


workflow: dict[str, Job] = {}
secrets: list[str] = []  # every secret value the jobs handled, once the stack is up


def test_project_update_installs_the_collection_from_the_project(controller: Controller) -> None:
    """AWX resolves zerotrust.aks.* only through what the project update installed."""
    project = controller.project_cache / "project"
    assert not (project / "build").exists(), "a plain clone has no build/collections link"
    installed = controller.project_cache / "requirements_collections" / "ansible_collections"
    manifest = json.loads((installed / "zerotrust" / "aks" / "MANIFEST.json").read_text())
    galaxy = yaml.safe_load((project / "galaxy.yml").read_text())
    assert manifest["collection_info"]["version"] == galaxy["version"]
    assert not (controller.home / ".kube").exists()


def credential_variables(job: Job) -> set[str]:
    """The credential variables of the job's env/envvars; fails on any way to a kubeconfig."""
    envvars = yaml.safe_load((job.private_data_dir / "env" / "envvars").read_text())
    assert not {"KUBECONFIG", "K8S_AUTH_KUBECONFIG"} & set(envvars), sorted(envvars)
    task_env = {"AZURE_DISABLE_INSTANCE_DISCOVERY"}  # Extra Environment Variables, for the fake
    return {name for name in envvars if name.startswith(("AZURE_", "K8S_AUTH_")) and name not in task_env}


def test_workflow_azure_cluster_verify(controller: Controller, site_testbed: SiteTestbed, fake: FakeAzure) -> None:
    """Three job templates in a workflow: each node's artifacts become the next nodes' extra vars."""
    azure = controller.run("playbooks/azure.yml", workflow_extra_vars(controller, {}), [AZURE])
    workflow["azure"] = azure
    assert azure.status == "successful", azure.describe()
    assert credential_variables(azure) == AZURE_CREDENTIAL
    outputs = azure.artifacts
    for name in (
        "zerotrust_aks_identity_client_id",
        "zerotrust_aks_tenant_id",
        "zerotrust_aks_keyvault_name",
        "zerotrust_aks_secret_fingerprints",
    ):
        assert name in outputs, f"azure.yml publishes no {name} with set_stats: {sorted(outputs)}"
    assert outputs["zerotrust_aks_tenant_id"] == TENANT
    assert outputs["zerotrust_aks_keyvault_name"] == KEYVAULT

    ancestors = dict(outputs)
    cluster = controller.run("playbooks/cluster.yml", workflow_extra_vars(controller, ancestors), [KUBERNETES])
    workflow["cluster"] = cluster
    assert cluster.status == "successful", cluster.describe()
    assert credential_variables(cluster) == K8S_CREDENTIAL
    assert cluster.changed > 0
    assert "zerotrust_aks_instance" in cluster.artifacts, sorted(cluster.artifacts)

    ancestors.update(cluster.artifacts)
    assert sync_key_vault_secrets(site_testbed, fake)
    verify = controller.run("playbooks/verify.yml", workflow_extra_vars(controller, ancestors), [KUBERNETES])
    workflow["verify"] = verify
    assert verify.status == "successful", verify.describe()
    assert verify.changed == 0
    assert verify.artifacts.get("zerotrust_aks_verified") is True, verify.artifacts


def test_second_cluster_job_changes_nothing(controller: Controller) -> None:
    assert "verify" in workflow, "the workflow did not run"
    first = workflow["cluster"]
    ancestors = {**workflow["azure"].artifacts, **first.artifacts}
    again = controller.run("playbooks/cluster.yml", workflow_extra_vars(controller, ancestors), [KUBERNETES])
    workflow["cluster again"] = again
    assert again.status == "successful", again.describe()
    assert again.changed == 0, again.describe()
    assert again.artifacts == first.artifacts


def deployer_kubeconfig(deployer: Cluster, folder: Path) -> Path:
    """A kubeconfig for kubectl as the ServiceAccount (the jobs themselves never get one)."""
    ca_data = base64.b64encode(deployer.ca_cert.encode()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testbed", "cluster": {"server": deployer.host, "certificate-authority-data": ca_data}}],
        "users": [{"name": SA_NAME, "user": {"token": deployer.token}}],
        "contexts": [{"name": "deployer", "context": {"cluster": "testbed", "user": SA_NAME}}],
        "current-context": "deployer",
    }
    path = folder / "deployer.kubeconfig"
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_rbac_covers_what_aks_gets(
    controller: Controller,
    deployer: Cluster,
    site_testbed: SiteTestbed,
    playbook_runner: t.Callable[..., PlaybookRun],
    tmp_path: Path,
) -> None:
    """The testbed runs without ingress-nginx's admission webhook (nothing would answer it). The
    objects AKS gets with it (ValidatingWebhookConfiguration, the admission Jobs, Roles and
    bindings) pass the API server's authorization and escalation checks for the ServiceAccount,
    sent as the engine sends them (server-side apply): the Roles missing on the testbed are
    applied for real (a binding's escalation check reads its Role, which a dry run does not
    create), then every rendered object as a server-side dry run. The Roles made here are removed."""
    assert "cluster" in workflow, "the workflow did not run (the namespaces must exist)"
    render = tmp_path / "render"
    ancestors = {**workflow["azure"].artifacts, **workflow["cluster"].artifacts}
    extra_vars = {
        **workflow_extra_vars(controller, ancestors),
        "zerotrust_aks_app_role_assignments": INVENTORY_VARS["zerotrust_aks_app_role_assignments"],
        "ingress_nginx_admission_webhook": True,
        "zerotrust_aks_render_dir": str(render),
    }
    playbook_runner("playbooks/cluster.yml", inventory=[REPO / "inventories" / "aks"], extra_vars=extra_vars)
    files = {path: yaml.safe_load(path.read_text())["kind"] for path in sorted(render.glob("*.yaml"))}
    assert {"ValidatingWebhookConfiguration", "Job", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} <= set(
        files.values()
    )
    missing_roles = [
        str(path)
        for path, kind in files.items()
        if kind in ("ClusterRole", "Role")
        and not kubectl_admin(site_testbed, "get", "-f", str(path), "--ignore-not-found", "-o", "name").stdout.strip()
    ]
    assert missing_roles, "the testbed already has every Role of the aks profile: nothing is proven for the webhook's"
    kubeconfig = deployer_kubeconfig(deployer, tmp_path)

    def apply_as_deployer(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(site_testbed.kubectl), f"--kubeconfig={kubeconfig}", "apply", "--server-side", *args]
        return subprocess.run(
            [*command, "--field-manager=zerotrust-aks-rbac-probe"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    try:
        roles = apply_as_deployer(*(f"--filename={path}" for path in missing_roles))
        assert roles.returncode == 0, roles.stderr
        dry_run = apply_as_deployer("--force-conflicts", "--dry-run=server", f"--filename={render}")
        assert dry_run.returncode == 0, dry_run.stderr
        assert dry_run.stdout.count("(server dry run)") == len(files), dry_run.stdout
    finally:
        for path in missing_roles:
            kubectl_admin(site_testbed, "delete", "--ignore-not-found", "-f", path)


def test_the_ingress_nginx_rules_are_required(deployer: Cluster, site_testbed: SiteTestbed, tmp_path: Path) -> None:
    """docs/rbac/ingress-nginx.yml is what escalation prevention demands: with it the
    ServiceAccount may create a ClusterRole like ingress-nginx's (server-side dry run); without
    it, the API server refuses."""
    copy = json.loads(kubectl_admin(site_testbed, "get", "clusterrole", "ingress-nginx", "-o", "json").stdout)
    copy["metadata"] = {"name": ESCALATION_PROBE}
    kubeconfig = deployer_kubeconfig(deployer, tmp_path)

    def apply_as_deployer() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(site_testbed.kubectl),
                f"--kubeconfig={kubeconfig}",
                "apply",
                "--server-side",
                "--dry-run=server",
                "-f",
                "-",
            ],
            input=json.dumps(copy),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    allowed = apply_as_deployer()
    assert allowed.returncode == 0, allowed.stderr
    kubectl_admin(site_testbed, "delete", "clusterrolebinding", "zerotrust-aks-deployer-ingress-nginx")
    try:
        refused = apply_as_deployer()
    finally:
        kubectl_admin(site_testbed, "apply", "--server-side", "-f", str(RBAC / "ingress-nginx.yml"))
    assert refused.returncode != 0
    assert "attempting to grant RBAC permissions not currently held" in refused.stderr, refused.stderr


def test_no_secret_value_in_any_job_event(
    controller: Controller, fake: FakeAzure, deployer: Cluster, site_testbed: SiteTestbed
) -> None:
    """The event stream (what AWX stores and shows as job output; -vvv here) holds no secret."""
    assert len(workflow) == 4, f"the jobs before did not run: {sorted(workflow)}"
    secrets.extend(secret_values(fake, deployer, site_testbed))
    for job in controller.jobs:
        assert_no_leak(job, secrets)


def test_teardown_job_removes_the_stack(controller: Controller, site_testbed: SiteTestbed) -> None:
    """teardown.yml as a job template, with the same credential (the RBAC covers deleting)."""
    assert secrets, "the jobs before did not run"
    ancestors = {**workflow["azure"].artifacts, **workflow["cluster"].artifacts}
    teardown = controller.run("playbooks/teardown.yml", workflow_extra_vars(controller, ancestors), [KUBERNETES])
    assert teardown.status == "successful", teardown.describe()
    assert teardown.changed > 0
    instance = workflow["cluster"].artifacts["zerotrust_aks_instance"]
    left = kubectl_admin(site_testbed, "get", "namespaces", "-l", f"zerotrust.aks/owned-by={instance}", "-o", "name")
    assert left.stdout.strip() == ""
    assert_no_leak(teardown, secrets)
    # Every request of every job was allowed: nothing was refused and then worked around.
    user = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
    with site_testbed.audit_log.open() as log:
        events = [json.loads(line) for line in log if user in line]
    assert len(events) > 100, len(events)
    refused = [
        f"{e['verb']} {e['requestURI']}"
        for e in events
        if e.get("responseStatus", {}).get("code") == 403 and ESCALATION_PROBE not in e["requestURI"]
    ]
    assert refused == []


def assert_no_leak(job: Job, values: list[str]) -> None:
    """No file of the job's artifacts holds a value, except ansible-runner's ``command`` (its
    record of the job's environment, credentials included: AWX keeps it only after masking them
    with build_safe_env). At least the job_events (the event stream) are checked."""
    assert "<127.0.0.1>" in job.output or "ESTABLISH LOCAL CONNECTION" in job.output, "not -vvv output"
    events = 0
    for path in sorted(job.artifact_dir.rglob("*")):
        relative = path.relative_to(job.artifact_dir)
        if not path.is_file() or str(relative) == "command":
            continue
        events += relative.parts[0] == "job_events"
        text = path.read_text(errors="replace")
        leaked = [i for i, value in enumerate(values) if value in text]
        assert not leaked, f"job {job.ident}: {relative} holds secret value(s) no. {leaked} of secret_values()"
    assert events == len(job.events) > 10, f"job {job.ident}: {events} event files"
