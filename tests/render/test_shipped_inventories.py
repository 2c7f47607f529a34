"""The example inventories under inventories/ render as shipped, with the secure settings.

Users start from inventories/local and inventories/aks, so these are rendered exactly as they are
in the repository (plus, for aks, the values the azure layer hands the cluster layer in
``site.yml``), and the rendered objects must show what the README's security section promises.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import yaml
from support.playbook import PlaybookRun, run_playbook

from .conftest import CLUSTER_PLAYBOOK, REPO

# What the azure layer of site.yml sets before the cluster layer runs (made-up values).
AZURE_LAYER_OUTPUTS = {
    "zerotrust_aks_tenant_id": "7c0d3f5e-1b2a-4c3d-9e8f-0a1b2c3d4e5f",
    "zerotrust_aks_identity_client_id": "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b",
    "zerotrust_aks_secret_fingerprints": {
        "client_secret": "sha256:0123456789ab",
        "cookie_secret": "sha256:ba9876543210",
    },
}


def render_shipped(
    render_env: dict[str, str], directory: Path, profile: str, extra_vars: dict[str, t.Any] | None = None
) -> tuple[PlaybookRun, dict[tuple[str, str | None, str], dict[str, t.Any]]]:
    result = run_playbook(
        CLUSTER_PLAYBOOK,
        env=render_env,
        inventory=[REPO / "inventories" / profile],
        extra_vars={"zerotrust_aks_render_dir": str(directory), **(extra_vars or {})},
        must_succeed=False,
        timeout=600,
    )
    objects = {}
    for path in sorted(directory.glob("*.yaml")):
        obj = yaml.safe_load(path.read_text())
        objects[(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
    return result, objects


def container_args(objects: dict[tuple[str, str | None, str], dict[str, t.Any]]) -> list[str]:
    deployment = objects[("Deployment", "oauth2-proxy", "oauth2-proxy")]
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "oauth2-proxy")
    args: list[str] = container["args"]
    return args


def assert_default_deny_everywhere(objects: dict[tuple[str, str | None, str], dict[str, t.Any]]) -> None:
    namespaces = {name for kind, _ns, name in objects if kind == "Namespace"}
    assert namespaces
    for namespace in namespaces:
        policy = objects.get(("NetworkPolicy", namespace, "default-deny"))
        assert policy, f"no default-deny NetworkPolicy in {namespace}"
        assert policy["spec"]["podSelector"] == {}
        assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]


def test_local_inventory_renders_as_shipped(render_env: dict[str, str], tmp_path: Path) -> None:
    result, objects = render_shipped(render_env, tmp_path / "local", "local")
    assert result.returncode == 0, result.describe()
    args = container_args(objects)
    assert "--allowed-group=zerotrust-users" in args
    assert "--cookie-expire=8h" in args and "--cookie-refresh=1h" in args
    assert not [a for a in args if a.startswith(("--pass-access-token", "--set-authorization-header"))], args
    ingress = objects[("Ingress", "colors-web", "colors-web")]
    response_headers = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-response-headers"]
    assert "Authorization" not in response_headers
    assert_default_deny_everywhere(objects)


def test_aks_inventory_renders_with_the_azure_layer_outputs(render_env: dict[str, str], tmp_path: Path) -> None:
    result, objects = render_shipped(render_env, tmp_path / "aks", "aks", AZURE_LAYER_OUTPUTS)
    assert result.returncode == 0, result.describe()
    args = container_args(objects)
    assert "--provider=entra-id" in args
    # App roles in the roles claim: only holders of the declared role get a session.
    assert "--oidc-groups-claim=roles" in args
    assert "--allowed-group=colors.user" in args
    # Workload identity: the oauth2-proxy pods, and nothing node-wide, read Key Vault.
    deployment = objects[("Deployment", "oauth2-proxy", "oauth2-proxy")]
    assert deployment["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    account = objects[("ServiceAccount", "oauth2-proxy", "oauth2-proxy")]
    client_id = AZURE_LAYER_OUTPUTS["zerotrust_aks_identity_client_id"]
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == client_id
    provider_class = next(obj for (kind, _ns, _name), obj in objects.items() if kind == "SecretProviderClass")
    parameters = provider_class["spec"]["parameters"]
    assert parameters["clientID"] == client_id
    assert parameters.get("useVMManagedIdentity", "false") == "false"
    assert "AKS attaches to the nodes" not in result.output  # no add-on identity warning
    assert_default_deny_everywhere(objects)


def test_aks_inventory_alone_names_what_the_azure_layer_provides(render_env: dict[str, str], tmp_path: Path) -> None:
    result, objects = render_shipped(render_env, tmp_path / "aks-alone", "aks")
    assert result.returncode != 0
    assert not objects
    assert "zerotrust_aks_identity_client_id" in result.output


@pytest.mark.parametrize("profile", ["local", "aks"])
def test_shipped_inventories_name_who_may_enter(profile: str) -> None:
    """The secure settings are in the files users copy, not only in test inventories."""
    variables = yaml.safe_load((REPO / "inventories" / profile / "group_vars" / "all.yml").read_text())
    assert variables.get("zerotrust_aks_allowed_groups") or variables.get("zerotrust_aks_app_role_assignments")
    assert not variables.get("zerotrust_aks_allow_all_tenant_users", False)
    if profile == "aks":
        assert variables["zerotrust_aks_identity_mode"] == "workload"
