"""The cluster layer rendered for each profile: schemas, security properties, no secret values."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import typing as t
from pathlib import Path

import jsonschema
import pytest
import yaml
from support.playbook import run_playbook
from support.scans import assert_checkov_clean

from .conftest import HERE, PROFILES, REPO, Render, RenderProfile

KUBERNETES_VERSION = "1.35.0"
CRD_FILES = {
    ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"): HERE
    / "schemas"
    / "secrets-store.csi.x-k8s.io_secretproviderclasses.yaml",
}
PART_OF = "zerotrust-aks"
RECOMMENDED_LABELS = ("name", "instance", "component", "part-of", "managed-by")
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet", "Job")
# The identity headers of oauth2-proxy's /oauth2/auth answer (--set-xauthrequest); the demo
# needs none of the user's tokens, so neither Authorization nor X-Auth-Request-Access-Token.
AUTH_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/auth-url": "http://oauth2-proxy.oauth2-proxy.svc.cluster.local:4180/oauth2/auth",
    "nginx.ingress.kubernetes.io/auth-signin": "https://$host/oauth2/start?rd=$escaped_request_uri",
    "nginx.ingress.kubernetes.io/auth-response-headers": (
        "X-Auth-Request-User,X-Auth-Request-Email,X-Auth-Request-Groups"
    ),
}
SECRET_INPUTS = ("zerotrust_aks_client_secret", "zerotrust_aks_cookie_secret", "zerotrust_aks_client_id")


def pod_specs(render: Render) -> list[tuple[str, dict[str, t.Any]]]:
    specs = []
    for file_name, obj in render.objects.items():
        if obj["kind"] in WORKLOAD_KINDS:
            specs.append((file_name, obj["spec"]["template"]["spec"]))
    return specs


def containers(render: Render) -> list[tuple[str, dict[str, t.Any], dict[str, t.Any]]]:
    """(file, pod spec, container) for every container and init container."""
    return [
        (file_name, spec, container)
        for file_name, spec in pod_specs(render)
        for container in spec.get("initContainers", []) + spec["containers"]
    ]


def ours(render: Render) -> dict[str, dict[str, t.Any]]:
    """Objects of this layer's own roles (ingress-nginx is checked by its own suite)."""
    return {
        name: obj
        for name, obj in render.objects.items()
        if obj["metadata"].get("labels", {}).get("app.kubernetes.io/name") != "ingress-nginx"
    }


# --- 1. Schemas --------------------------------------------------------------------------------


def strict(schema: dict[str, t.Any]) -> dict[str, t.Any]:
    """The CRD schema with unknown properties rejected, as kubernetes-validate --strict does."""
    schema = copy.deepcopy(schema)

    def walk(node: dict[str, t.Any]) -> None:
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for child in node.get("properties", {}).values():
            walk(child)
        if isinstance(node.get("items"), dict):
            walk(node["items"])
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"])

    walk(schema)
    return schema


def crd_schema(api_version: str, kind: str) -> dict[str, t.Any]:
    crd = next(doc for doc in yaml.safe_load_all(CRD_FILES[(api_version, kind)].read_text()) if doc)
    version = api_version.split("/")[1]
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    return strict(served["schema"]["openAPIV3Schema"])


def test_builtin_kinds_validate_strictly(rendered: Render) -> None:
    files = [
        rendered.directory / name
        for name, obj in rendered.objects.items()
        if (obj["apiVersion"], obj["kind"]) not in CRD_FILES
    ]
    assert files
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line for line in result.stdout.splitlines() if not line.startswith("INFO")]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
    assert result.stdout.count("INFO") == len(files)


def test_custom_resources_validate_against_their_crd(rendered: Render) -> None:
    custom = [(name, obj) for name, obj in rendered.objects.items() if (obj["apiVersion"], obj["kind"]) in CRD_FILES]
    if rendered.profile == "aks":
        assert custom, "the aks profile must render a SecretProviderClass"
    for name, obj in custom:
        try:
            jsonschema.validate(obj, crd_schema(obj["apiVersion"], obj["kind"]))
        except jsonschema.ValidationError as error:
            pytest.fail(f"{name}: {error.message} at {list(error.absolute_path)}")


def test_crd_validation_rejects_a_misspelt_field() -> None:
    bad: dict[str, t.Any] = {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": {"name": "x"},
        "spec": {"provider": "azure", "secretObject": []},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, crd_schema(bad["apiVersion"], bad["kind"]))


# --- 2. What users rely on ---------------------------------------------------------------------


def test_file_names_are_stable_and_ordered(rendered: Render) -> None:
    names = list(rendered.objects)
    assert names == sorted(names)
    for index, (name, obj) in enumerate(rendered.objects.items(), start=1):
        meta = obj["metadata"]
        expected = f"{index:03d}-{meta.get('namespace', 'cluster')}-{obj['kind'].lower()}-{meta['name']}.yaml"
        assert name == expected
    first_namespace = min(i for i, o in enumerate(rendered.objects.values()) if o["kind"] == "Namespace")
    assert first_namespace == 0, "namespaces must come first"


def test_no_secret_is_rendered(rendered: Render) -> None:
    assert not rendered.of_kind("Secret")


def test_no_secret_value_appears_in_the_output(rendered: Render) -> None:
    values = [rendered.inventory_vars[name] for name in SECRET_INPUTS if name in rendered.inventory_vars]
    if rendered.profile == "local":
        assert len(values) == 3
    text = "\n".join(path.read_text() for path in rendered.directory.iterdir())
    output = rendered.result.stdout + rendered.result.stderr
    for value in values:
        assert value not in text, "a secret value was rendered"
        assert value not in output, "a secret value was logged"


def test_every_object_carries_the_recommended_labels(rendered: Render) -> None:
    for name, obj in rendered.objects.items():
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == PART_OF, f"{name}: teardown finds objects by part-of"
    for name, obj in ours(rendered).items():
        labels = obj["metadata"].get("labels", {})
        missing = [label for label in RECOMMENDED_LABELS if f"app.kubernetes.io/{label}" not in labels]
        assert not missing, f"{name} lacks {missing}"


def test_namespaces_enforce_the_restricted_pod_security_standard(rendered: Render) -> None:
    for namespace in rendered.of_kind("Namespace"):
        labels = namespace["metadata"]["labels"]
        if labels.get("app.kubernetes.io/name") == "ingress-nginx":
            continue
        assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", namespace["metadata"]["name"]


def test_the_api_is_internal_only(rendered: Render) -> None:
    service = rendered.get("Service", "colors-api", "colors-api")
    assert service["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in service["spec"]["ports"]] == [80]
    assert not [i for i in rendered.of_kind("Ingress") if i["metadata"]["namespace"] == "colors-api"]
    backends = [
        path["backend"]["service"]["name"]
        for ingress in rendered.of_kind("Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert "colors-api" not in backends


def test_the_api_admits_only_the_web_namespace(rendered: Render) -> None:
    policy = rendered.get("NetworkPolicy", "colors-api", "colors-api")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    sources = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    assert sources == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "colors-web"}}}]


def test_services_are_cluster_ip_and_colors_target_8080(rendered: Render) -> None:
    for name in ("colors-api", "colors-web"):
        service = rendered.get("Service", name, name)
        assert service["spec"]["type"] == "ClusterIP"
        assert [p["targetPort"] for p in service["spec"]["ports"]] == [8080]
        deployment = rendered.get("Deployment", name, name)
        ports = [p["containerPort"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]]
        assert ports == [8080]
    for service in ours(rendered).values():
        if service["kind"] == "Service":
            assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]


def test_web_ingress_has_exactly_the_auth_annotations(rendered: Render) -> None:
    ingress = rendered.get("Ingress", "colors-web", "colors-web")
    annotations = ingress["metadata"]["annotations"]
    auth = {k: v for k, v in annotations.items() if k.startswith("nginx.ingress.kubernetes.io/auth-")}
    assert auth == AUTH_ANNOTATIONS
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert re.fullmatch(r"[1-9][0-9]*k", annotations["nginx.ingress.kubernetes.io/proxy-buffer-size"])
    assert ingress["spec"]["ingressClassName"] == "nginx"
    host = rendered.inventory_vars["zerotrust_aks_host"]
    assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": "zerotrust-aks-tls"}]


def test_oauth2_proxy_ingress_serves_oauth2_on_the_host(rendered: Render) -> None:
    ingress = rendered.get("Ingress", "oauth2-proxy", "oauth2-proxy")
    host = rendered.inventory_vars["zerotrust_aks_host"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"][0]["hosts"] == [host]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == host
    assert [(p["path"], p["pathType"]) for p in rule["http"]["paths"]] == [("/oauth2", "Prefix")]
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "oauth2-proxy", "port": {"number": 4180}}
    assert "nginx.ingress.kubernetes.io/proxy-buffer-size" in ingress["metadata"]["annotations"]


def test_no_snippet_annotations(rendered: Render) -> None:
    for name, obj in rendered.objects.items():
        annotations = obj["metadata"].get("annotations", {})
        assert not [k for k in annotations if "snippet" in k], name


def test_no_ingress_rule_separates_host_from_http(rendered: Render) -> None:
    for ingress in rendered.of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            assert set(rule) == {"host", "http"}, f"{ingress['metadata']['name']}: rule {rule}"


def test_every_container_meets_the_restricted_profile(rendered: Render) -> None:
    assert containers(rendered)
    for name, spec, container in containers(rendered):
        pod_context = spec.get("securityContext", {})
        context = container.get("securityContext", {})
        where = f"{name}: {container['name']}"
        assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, where
        assert context.get("runAsUser", pod_context.get("runAsUser", 1)) != 0, where
        assert context.get("allowPrivilegeEscalation") is False, where
        assert context.get("privileged", False) is False, where
        assert context.get("capabilities", {}).get("drop") == ["ALL"], where
        assert set(context.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}, where
        seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
        assert seccomp.get("type") in ("RuntimeDefault", "Localhost"), where
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key, False), where
        assert not [v for v in spec.get("volumes", []) if "hostPath" in v], where


def test_every_container_has_requests_limits_and_probes(rendered: Render) -> None:
    for name, _spec, container in containers(rendered):
        where = f"{name}: {container['name']}"
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{where} lacks {bound}"
    for name, obj in rendered.objects.items():
        if obj["kind"] in ("Deployment", "DaemonSet"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                assert "livenessProbe" in container and "readinessProbe" in container, f"{name}: {container['name']}"


def test_our_pods_have_read_only_roots_and_no_token(rendered: Render) -> None:
    for name, obj in ours(rendered).items():
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        spec = obj["spec"]["template"]["spec"]
        assert spec.get("automountServiceAccountToken") is False, name
        for container in spec["containers"]:
            assert container["securityContext"].get("readOnlyRootFilesystem") is True, name
            assert ":latest" not in container["image"] or name.endswith("deployment-colors-web.yaml"), name


def oauth2_proxy_args(render: Render) -> dict[str, list[str]]:
    deployment = render.get("Deployment", "oauth2-proxy", "oauth2-proxy")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args: dict[str, list[str]] = {}
    for arg in container["args"]:
        flag, _sep, value = arg.partition("=")
        args.setdefault(flag, []).append(value)
    return args


def test_oauth2_proxy_is_pinned_to_a_fixed_release(rendered: Render) -> None:
    deployment = rendered.get("Deployment", "oauth2-proxy", "oauth2-proxy")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    match = re.fullmatch(r"quay\.io/oauth2-proxy/oauth2-proxy:v(\d+)\.(\d+)\.(\d+)(@sha256:[0-9a-f]{64})?", image)
    assert match, image
    assert tuple(int(part) for part in match.groups()[:3]) >= (7, 15, 2)


def test_oauth2_proxy_flags(rendered: Render) -> None:
    args = oauth2_proxy_args(rendered)
    host = rendered.inventory_vars["zerotrust_aks_host"]
    expected = {
        "--reverse-proxy": ["true"],
        "--set-xauthrequest": ["true"],
        "--cookie-secure": ["true"],
        "--cookie-samesite": ["lax"],
        "--cookie-csrf-per-request": ["true"],
        "--cookie-csrf-expire": ["5m"],
        "--upstream": ["static://202"],
        "--http-address": ["0.0.0.0:4180"],
        "--redirect-url": [f"https://{host}/oauth2/callback"],
        "--email-domain": ["*"],
        "--code-challenge-method": ["S256"],
    }
    for flag, values in expected.items():
        assert args.get(flag) == values, flag
    assert "--trusted-proxy-ip" not in args, "no trusted proxies unless oauth2_proxy_trusted_proxy_ips is set"
    # Redirects after login go to the site (and, on aks, Entra's sign-out), never to a wildcard.
    assert host in args["--whitelist-domain"]
    assert not [domain for domain in args["--whitelist-domain"] if domain.startswith(("*", "."))]
    # No app asks for the user's tokens by default, so oauth2-proxy hands out none.
    assert "--pass-access-token" not in args and "--set-authorization-header" not in args
    assert "--cookie-name" in args and "--oidc-email-claim" in args
    for forbidden in ("--azure-tenant", "--user-id-claim", "--client-secret", "--cookie-secret", "--client-id"):
        assert forbidden not in args
    if rendered.profile == "aks":
        tenant = rendered.inventory_vars["zerotrust_aks_tenant_id"]
        assert args["--provider"] == ["entra-id"]
        assert args["--oidc-issuer-url"] == [f"https://login.microsoftonline.com/{tenant}/v2.0"]
    else:
        assert args["--provider"] == ["oidc"]
        assert args["--oidc-issuer-url"] == [rendered.inventory_vars["zerotrust_aks_oidc_issuer_url"]]


def test_oauth2_proxy_trusted_proxies_and_pkce_are_inputs(render_profile: RenderProfile) -> None:
    render = render_profile(
        "local",
        "-e",
        json.dumps(
            {
                "oauth2_proxy_trusted_proxy_ips": ["10.244.0.0/16", "fd00:10::/56"],
                "oauth2_proxy_code_challenge_method": "",
            }
        ),
    )
    args = oauth2_proxy_args(render)
    assert args["--trusted-proxy-ip"] == ["10.244.0.0/16", "fd00:10::/56"]
    assert "--code-challenge-method" not in args, "an empty method turns PKCE off"


def test_oauth2_proxy_secrets_come_only_from_secret_refs(rendered: Render) -> None:
    deployment = rendered.get("Deployment", "oauth2-proxy", "oauth2-proxy")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    for name, secret in (
        ("OAUTH2_PROXY_CLIENT_ID", "client-id"),
        ("OAUTH2_PROXY_CLIENT_SECRET", "client-secret"),
        ("OAUTH2_PROXY_COOKIE_SECRET", "cookie-secret"),
    ):
        assert env[name] == {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": secret}}}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["zerotrust.aks/secrets-checksum"])


@pytest.mark.parametrize("profile", ["aks"])
def test_aks_syncs_the_three_secrets_through_the_csi_volume(render_profile: RenderProfile, profile: str) -> None:
    # The add-on identity (no longer the default) reads through the node's managed identity.
    render = render_profile(profile, "-e", "zerotrust_aks_identity_mode=addon")
    spc = render.get("SecretProviderClass", "oauth2-proxy", "oauth2-proxy")
    parameters = spc["spec"]["parameters"]
    assert spc["spec"]["provider"] == "azure"
    assert parameters["useVMManagedIdentity"] == "true"
    assert parameters["userAssignedIdentityID"] == render.inventory_vars["zerotrust_aks_identity_client_id"]
    assert parameters["keyvaultName"] == render.inventory_vars["zerotrust_aks_keyvault_name"]
    assert parameters["tenantId"] == render.inventory_vars["zerotrust_aks_tenant_id"]
    objects = [yaml.safe_load(item) for item in yaml.safe_load(parameters["objects"])["array"]]
    aliases = {item.get("objectAlias", item["objectName"]) for item in objects}
    synced = {(s["secretName"], d["key"], d["objectName"]) for s in spc["spec"]["secretObjects"] for d in s["data"]}
    assert synced == {(n, n, n) for n in ("client-id", "client-secret", "cookie-secret")}
    assert {object_name for _kind, _alias, object_name in synced} <= aliases, "secretObjects must name mounted objects"

    pod = render.get("Deployment", "oauth2-proxy", "oauth2-proxy")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "csi" in v]
    assert volume["csi"] == {
        "driver": "secrets-store.csi.k8s.io",
        "readOnly": True,
        "volumeAttributes": {"secretProviderClass": "oauth2-proxy"},
    }
    mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert mounts and mounts[0]["readOnly"] is True


def test_workload_identity_federates_the_service_account(render_profile: RenderProfile) -> None:
    # Workload Identity is the default (and the inventory's setting).
    render = render_profile("aks")
    spc = render.get("SecretProviderClass", "oauth2-proxy", "oauth2-proxy")
    client_id = render.inventory_vars["zerotrust_aks_identity_client_id"]
    assert spc["spec"]["parameters"]["clientID"] == client_id
    assert spc["spec"]["parameters"]["useVMManagedIdentity"] == "false"
    assert "userAssignedIdentityID" not in spc["spec"]["parameters"]
    account = render.get("ServiceAccount", "oauth2-proxy", "oauth2-proxy")
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == client_id
    labels = render.get("Deployment", "oauth2-proxy", "oauth2-proxy")["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"


def test_a_changed_secret_rolls_oauth2_proxy_and_nothing_else(render_profile: RenderProfile) -> None:
    before = render_profile("aks")
    after = render_profile(
        "aks", "-e", '{"zerotrust_aks_secret_fingerprints": {"cookie_secret": "sha256:000000000000"}}'
    )
    assert list(before.objects) == list(after.objects)
    changed = [name for name in before.objects if before.objects[name] != after.objects[name]]
    assert changed == [n for n in before.objects if n.endswith("-oauth2-proxy-deployment-oauth2-proxy.yaml")]


def test_rendering_again_replaces_the_folder_with_the_same_files(render_profile: RenderProfile, tmp_path: Path) -> None:
    reference = render_profile("local")
    folder = tmp_path / "gitops"
    render_profile("aks", directory=folder)
    again = render_profile("local", directory=folder)
    rendered_files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert rendered_files == list(reference.objects), "stale files must be removed"
    assert {n: (folder / n).read_text() for n in again.objects} == {
        n: (reference.directory / n).read_text() for n in reference.objects
    }


# --- 3. Security scan --------------------------------------------------------------------------


def test_checkov_finds_nothing(rendered: Render) -> None:
    assert_checkov_clean(rendered.directory)


def test_every_checkov_skip_is_justified(rendered: Render) -> None:
    for name, obj in rendered.objects.items():
        for key, value in obj["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                check, _sep, reason = value.partition("=")
                assert re.fullmatch(r"CKV2?_K8S_\d+", check), f"{name}: {value}"
                assert len(reason.split()) >= 4, f"{name}: skip of {check} needs a reason"


# --- 4. Bad values fail early ------------------------------------------------------------------

BAD_VALUES = [
    ("local", {"zerotrust_aks_host": "Not A Host!"}, "zerotrust_aks_host"),
    ("local", {"zerotrust_aks_host": "localhost"}, "zerotrust_aks_host"),
    ("aks", {"zerotrust_aks_platform": "gke"}, "zerotrust_aks_platform"),
    ("aks", {"oauth2_proxy_proxy_buffer_size": "big"}, "oauth2_proxy_proxy_buffer_size"),
    ("local", {"protected_apps_proxy_buffer_size": "16 kb"}, "protected_apps_proxy_buffer_size"),
    ("local", {"zerotrust_aks_cookie_secret": "only-21-characters-xx"}, "zerotrust_aks_cookie_secret"),
    ("local", {"zerotrust_aks_oidc_issuer_url": "idp.example.com"}, "oauth2_proxy_oidc_issuer_url"),
    ("aks", {"zerotrust_aks_tenant_id": "contoso"}, "zerotrust_aks_tenant_id"),
    ("aks", {"zerotrust_aks_identity_mode": "pod-identity"}, "zerotrust_aks_identity_mode"),
    ("local", {"oauth2_proxy_image_tag": "latest"}, "oauth2_proxy_image_tag"),
    ("local", {"oauth2_proxy_image_tag": "v7.5.0"}, "oauth2_proxy_image_tag"),
    ("local", {"oauth2_proxy_trusted_proxy_ips": ["ingress-nginx"]}, "oauth2_proxy_trusted_proxy_ips"),
    ("local", {"oauth2_proxy_code_challenge_method": "plain"}, "oauth2_proxy_code_challenge_method"),
]


@pytest.mark.parametrize(("profile", "values", "variable"), BAD_VALUES, ids=[case[2] for case in BAD_VALUES])
def test_bad_values_fail_before_anything_is_rendered(
    render_profile: RenderProfile, profile: str, values: dict[str, t.Any], variable: str
) -> None:

    render = render_profile(profile, "-e", json.dumps(values), check=False)
    output = render.result.stdout + render.result.stderr
    assert render.result.returncode != 0, output
    assert variable in output, output
    assert not render.directory.exists() or not any(render.directory.iterdir()), "files were rendered"
    for value in values.values():
        if "cookie_secret" in variable:
            assert value not in output, "the bad cookie secret was logged"


@pytest.mark.parametrize("profile", PROFILES)
def test_render_needs_no_kubeconfig(render_profile: RenderProfile, profile: str) -> None:
    render = render_profile(profile)
    assert "kubeconfig" not in (render.result.stdout + render.result.stderr).lower()


ROLE_TWICE_PLAYBOOK = """
- name: Run a component role twice, then render its output
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Compute the stack model
      ansible.builtin.include_role:
        name: zerotrust.aks.stack
      vars:
        zerotrust_aks_host: colors.example.com
        zerotrust_aks_allowed_groups: [zerotrust-users]
    - name: Compute the colors-api objects
      ansible.builtin.include_role:
        name: zerotrust.aks.colors_api
      loop: [1, 2]
    - name: Render them
      ansible.builtin.include_role:
        name: zerotrust.aks.manifests
      vars:
        manifests_objects: "{{ colors_api_manifests }}"
        manifests_render_dir: "{{ render_dir }}"
"""


def test_a_role_run_twice_lists_its_objects_once(render_env: dict[str, str], tmp_path: Path) -> None:
    playbook = tmp_path / "twice.yml"
    playbook.write_text(ROLE_TWICE_PLAYBOOK)
    folder = tmp_path / "out"
    run_playbook(playbook, env=render_env, extra_vars={"render_dir": str(folder)}, timeout=600)
    objects = [yaml.safe_load(path.read_text()) for path in folder.glob("*.yaml")]
    identities = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(identities) == len(set(identities)), sorted(identities)
    kinds = {identity[0] for identity in identities}
    assert kinds == {"Deployment", "Namespace", "NetworkPolicy", "Service", "ServiceAccount"}


# --- 5. The stack model: one rename keeps every reference consistent ---------------------------

RENAMED = {
    "zerotrust_aks_ingress_namespace": "edge",
    "zerotrust_aks_oauth2_proxy_namespace": "auth",
    "zerotrust_aks_colors_web_namespace": "web",
    "zerotrust_aks_colors_api_namespace": "api",
    "zerotrust_aks_ingress_class": "edge-nginx",
    "zerotrust_aks_tls_secret_name": "site-tls",
}
DEFAULT_NAMES = ("ingress-nginx", "oauth2-proxy", "colors-web", "colors-api")


def assert_wired(render: Render, ns: dict[str, str], ingress_class: str, tls_secret: str) -> None:
    """Every cross-reference of the stack points at the namespaces and names in ``ns``."""
    namespaces = {obj["metadata"]["name"] for obj in render.of_kind("Namespace")}
    expected = {ns["oauth2_proxy"], ns["colors_web"], ns["colors_api"], ns["ingress"]}
    assert namespaces == expected
    for name, obj in render.objects.items():
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] in expected, f"{name} is in {obj['metadata']['namespace']}"
    web = render.get("Ingress", ns["colors_web"], "colors-web")
    annotations = web["metadata"]["annotations"]
    assert (
        annotations["nginx.ingress.kubernetes.io/auth-url"]
        == f"http://oauth2-proxy.{ns['oauth2_proxy']}.svc.cluster.local:4180/oauth2/auth"
    )
    oauth2 = render.get("Ingress", ns["oauth2_proxy"], "oauth2-proxy")
    for ingress in (web, oauth2):
        assert ingress["spec"]["ingressClassName"] == ingress_class
        assert ingress["spec"]["tls"][0]["secretName"] == tls_secret
    ingress_class_objects = render.of_kind("IngressClass")
    if ingress_class_objects:
        assert [obj["metadata"]["name"] for obj in ingress_class_objects] == [ingress_class]
        controller = render.get("Deployment", ns["ingress"], "ingress-nginx-controller")
        args = controller["spec"]["template"]["spec"]["containers"][0]["args"]
        assert f"--ingress-class={ingress_class}" in args
    admitted = {
        "oauth2-proxy": (ns["oauth2_proxy"], ns["ingress"]),
        "colors-web": (ns["colors_web"], ns["ingress"]),
        "colors-api": (ns["colors_api"], ns["colors_web"]),
    }
    for name, (namespace, peer) in admitted.items():
        policy = render.get("NetworkPolicy", namespace, name)
        peers = [
            source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for rule in policy["spec"]["ingress"]
            for source in rule["from"]
        ]
        assert peers == [peer], f"NetworkPolicy {namespace}/{name} admits {peers}, not {peer}"
    deployment = render.get("Deployment", ns["colors_web"], "colors-web")
    assert deployment["metadata"]["annotations"]["zerotrust.aks/api-url"] == (
        f"http://colors-api.{ns['colors_api']}.svc.cluster.local/colors/random"
    )
    if render.profile == "aks":
        spc = render.get("SecretProviderClass", ns["oauth2_proxy"], "oauth2-proxy")
        assert spc["metadata"]["namespace"] == ns["oauth2_proxy"]


CLUSTER_SCOPED = ("Namespace", "ClusterRole", "ClusterRoleBinding", "IngressClass", "ValidatingWebhookConfiguration")


@pytest.mark.parametrize("profile", PROFILES)
def test_renaming_every_namespace_keeps_every_reference(render_profile: RenderProfile, profile: str) -> None:
    render = render_profile(profile, "-e", json.dumps(RENAMED))
    ns = {"ingress": "edge", "oauth2_proxy": "auth", "colors_web": "web", "colors_api": "api"}
    assert_wired(render, ns, "edge-nginx", "site-tls")
    text = "\n".join(yaml.safe_dump(obj) for obj in render.objects.values())
    for old in ("oauth2-proxy.oauth2-proxy", "colors-api.colors-api", "namespace: colors-web", "namespace: colors-api"):
        assert old not in text, f"{old!r} is still referenced after the rename"


def test_a_component_level_rename_is_followed_everywhere(render_profile: RenderProfile) -> None:
    """A user who sets a component's own input (inventory beats role defaults) renames it for all."""
    render = render_profile(
        "aks",
        "-e",
        json.dumps(
            {"oauth2_proxy_namespace": "auth", "ingress_nginx_namespace": "edge", "colors_api_namespace": "api"}
        ),
    )
    ns = {"ingress": "edge", "oauth2_proxy": "auth", "colors_web": "colors-web", "colors_api": "api"}
    assert_wired(render, ns, "nginx", "zerotrust-aks-tls")


def test_the_default_stack_is_wired_to_its_default_names(rendered: Render) -> None:
    ns = dict(zip(("ingress", "oauth2_proxy", "colors_web", "colors_api"), DEFAULT_NAMES, strict=True))
    assert_wired(rendered, ns, "nginx", "zerotrust-aks-tls")


PLAY_VARS_PLAYBOOK = """
- name: Set a component's namespace as a play variable, which the stack model cannot see
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    zerotrust_aks_host: colors.example.com
    zerotrust_aks_allowed_groups: [zerotrust-users]
    oauth2_proxy_namespace: auth
  tasks:
    - name: Compute the stack model
      ansible.builtin.import_role:
        name: zerotrust.aks.stack
    - name: Compute the oauth2-proxy objects
      ansible.builtin.import_role:
        name: zerotrust.aks.oauth2_proxy
"""


def test_a_component_input_the_model_cannot_see_is_refused(render_env: dict[str, str], tmp_path: Path) -> None:
    playbook = tmp_path / "play-vars.yml"
    playbook.write_text(PLAY_VARS_PLAYBOOK)
    result = run_playbook(playbook, env=render_env, must_succeed=False, timeout=600)
    output = result.output
    assert result.returncode != 0, output
    assert 'oauth2_proxy_namespace is "auth" but the stack model has "oauth2-proxy"' in output, output
    assert "zerotrust_aks_oauth2_proxy_namespace" in output


STACK_ERRORS = [
    (
        {"zerotrust_aks_oauth2_proxy_namespace": "auth", "oauth2_proxy_namespace": "login"},
        ["zerotrust_aks_oauth2_proxy_namespace", "oauth2_proxy_namespace"],
    ),
    ({"colors_web_ingress_namespace": "edge"}, ["colors_web_ingress_namespace", "zerotrust_aks_ingress_namespace"]),
    ({"zerotrust_aks_colors_api_namespace": "kube-system"}, ["zerotrust_aks_colors_api_namespace", "system namespace"]),
    ({"zerotrust_aks_oauth2_proxy_namespace": "default"}, ["zerotrust_aks_oauth2_proxy_namespace", "system namespace"]),
    (
        {"colors_web_namespace": "colors-api"},
        ["zerotrust_aks_colors_web_namespace", "zerotrust_aks_colors_api_namespace"],
    ),
    ({"zerotrust_aks_ingress_class": "Nginx!"}, ["zerotrust_aks_ingress_class"]),
    ({"zerotrust_aks_instance": "Zero Trust"}, ["zerotrust_aks_instance"]),
    ({"keyvault_access_service_account": "proxy"}, ["keyvault_access_service_account", "no longer an input"]),
]


@pytest.mark.parametrize(("values", "named"), STACK_ERRORS, ids=[",".join(case[0]) for case in STACK_ERRORS])
def test_inconsistent_or_unsafe_stack_inputs_fail_first(
    render_profile: RenderProfile, values: dict[str, t.Any], named: list[str]
) -> None:
    render = render_profile("local", "-e", json.dumps(values), check=False)
    output = render.result.stdout + render.result.stderr
    assert render.result.returncode != 0, output
    for text in named:
        assert text in output, output
    assert "Compute the ingress-nginx controller objects" not in output, "a component role ran after the error"
    assert not render.directory.exists() or not any(render.directory.iterdir()), "files were rendered"
