# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the stack model: one rename reaches every reference, and contradicting,
retired or unsafe inputs are refused with the variables named."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import yaml
from ansible_collections.zerotrust.aks.plugins.plugin_utils import _stack

REPO = Path(__file__).resolve().parents[4]

# The stack role's defaults, read from the role (the one home of their values), and one allowed
# group so that deny by default does not hide the other rules, and a host (required).
DEFAULTS: dict[str, t.Any] = yaml.safe_load((REPO / "roles" / "stack" / "defaults" / "main.yml").read_text())
ALLOWED = {"zerotrust_aks_host": "colors.example.com", "zerotrust_aks_allowed_groups": ["zerotrust-users"]}


def model(user: dict[str, t.Any] | None = None, **inputs: t.Any) -> dict[str, t.Any]:
    """The model as the stack role computes it: inventory values beat the role's defaults."""
    user = {**ALLOWED, **(user or {})}
    merged = {**DEFAULTS, **{k: v for k, v in user.items() if k in DEFAULTS}, **inputs}
    stack: dict[str, t.Any] = _stack.compute(merged, {**user, **inputs})
    return stack


def test_the_defaults_make_a_consistent_stack() -> None:
    stack = model()
    assert stack["errors"] == []
    assert stack["namespaces"] == {
        "ingress": "ingress-nginx",
        "gateway": "traefik",
        "oauth2_proxy": "oauth2-proxy",
        "colors_web": "colors-web",
        "colors_api": "colors-api",
    }
    assert stack["oauth2_proxy"]["auth_url"] == "http://oauth2-proxy.oauth2-proxy.svc.cluster.local:4180/oauth2/auth"
    assert stack["colors_api"]["url"] == "http://colors-api.colors-api.svc.cluster.local/colors/random"
    assert stack["tls"]["namespaces"] == ["oauth2-proxy", "colors-web"]
    assert stack["labels"] == {
        "app.kubernetes.io/part-of": "zerotrust-aks",
        "app.kubernetes.io/managed-by": "zerotrust.aks",
    }
    assert stack["stack_namespaces"] == ["ingress-nginx", "oauth2-proxy", "colors-web", "colors-api"]
    assert stack["identity"]["federated_subject"] == "system:serviceaccount:oauth2-proxy:oauth2-proxy"


def test_a_stack_input_rename_reaches_every_reference() -> None:
    stack = model(
        {
            "zerotrust_aks_oauth2_proxy_namespace": "auth",
            "zerotrust_aks_colors_api_namespace": "api",
            "zerotrust_aks_ingress_namespace": "edge",
        }
    )
    assert stack["errors"] == []
    assert stack["oauth2_proxy"]["auth_url"] == "http://oauth2-proxy.auth.svc.cluster.local:4180/oauth2/auth"
    assert stack["colors_api"]["url"] == "http://colors-api.api.svc.cluster.local/colors/random"
    assert stack["ingress"]["namespace"] == "edge"
    assert stack["tls"]["namespaces"] == ["auth", "colors-web"]
    assert stack["identity"]["federated_subject"] == "system:serviceaccount:auth:oauth2-proxy"


@pytest.mark.parametrize(
    ("alias", "key"),
    [
        ("oauth2_proxy_namespace", "oauth2_proxy"),
        ("app_secrets_namespace", "oauth2_proxy"),
        ("keyvault_access_namespace", "oauth2_proxy"),
        ("colors_web_namespace", "colors_web"),
        ("colors_api_namespace", "colors_api"),
        ("ingress_nginx_namespace", "ingress"),
    ],
)
def test_a_component_input_renames_the_namespace_for_everyone(alias: str, key: str) -> None:
    stack = model({alias: "renamed"})
    assert stack["errors"] == []
    assert stack["namespaces"][key] == "renamed"


def test_a_component_input_that_agrees_with_the_stack_input_is_fine() -> None:
    stack = model({"zerotrust_aks_oauth2_proxy_namespace": "auth", "oauth2_proxy_namespace": "auth"})
    assert stack["errors"] == []


def test_two_settings_of_one_fact_that_disagree_are_refused_naming_both() -> None:
    stack = model({"zerotrust_aks_oauth2_proxy_namespace": "auth", "oauth2_proxy_namespace": "login"})
    (error,) = stack["errors"]
    assert "zerotrust_aks_oauth2_proxy_namespace" in error
    assert "oauth2_proxy_namespace" in error
    assert '"auth"' in error and '"login"' in error


@pytest.mark.parametrize("name", sorted(_stack.RETIRED))
def test_every_retired_input_is_refused_with_its_replacement(name: str) -> None:
    stack = model({name: "anything"})
    assert any(name in error and _stack.RETIRED[name] in error for error in stack["errors"]), stack["errors"]


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease", "default"])
@pytest.mark.parametrize(
    "variable",
    [
        "zerotrust_aks_ingress_namespace",
        "zerotrust_aks_oauth2_proxy_namespace",
        "zerotrust_aks_colors_web_namespace",
        "zerotrust_aks_colors_api_namespace",
    ],
)
def test_system_namespaces_are_refused(variable: str, namespace: str) -> None:
    errors = model({variable: namespace})["errors"]
    assert any(variable in error and "system namespace" in error for error in errors), errors


def test_two_components_in_one_namespace_are_refused() -> None:
    errors = model({"zerotrust_aks_colors_web_namespace": "apps", "zerotrust_aks_colors_api_namespace": "apps"})[
        "errors"
    ]
    assert errors == [
        'zerotrust_aks_colors_web_namespace and zerotrust_aks_colors_api_namespace are both "apps"; each component '
        "needs a namespace of its own (their NetworkPolicies admit by namespace)."
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("zerotrust_aks_host", "localhost"),
        ("zerotrust_aks_host", "Colors.Example.com"),
        ("zerotrust_aks_instance", "Zero Trust"),
        ("zerotrust_aks_ingress_class", "Nginx"),
        ("zerotrust_aks_oauth2_proxy_namespace", "auth_proxy"),
        ("zerotrust_aks_tls_secret_name", "-tls"),
        ("zerotrust_aks_cookie_secret_name", "cookie_secret"),
        ("zerotrust_aks_platform", "gke"),
        ("zerotrust_aks_render_dir", " /tmp/out"),
    ],
)
def test_bad_formats_are_refused_naming_the_variable(variable: str, value: str) -> None:
    errors = model({variable: value})["errors"]
    assert len(errors) == 1 and errors[0].startswith(variable), errors


def test_without_the_controller_its_namespace_is_not_the_stacks() -> None:
    stack = model({"zerotrust_aks_ingress_controller": "none", "zerotrust_aks_ingress_namespace": "kube-ingress"})
    # A controller the cluster runs is referenced (NetworkPolicies admit it) but never owned.
    assert "ingress-nginx" not in stack["stack_namespaces"]
    assert any("system namespace" in error for error in stack["errors"])


def test_component_secret_names_are_followed() -> None:
    names = {"client_id": "oidc-id", "client_secret": "oidc-secret", "cookie_secret": "session-key"}
    stack = model({"app_secrets_secret_names": names, "app_secrets_secret_provider_class_name": "kv-sync"})
    assert stack["errors"] == []
    assert stack["secrets"]["names"] == names
    assert stack["secrets"]["provider_class"] == "kv-sync"


def test_key_vault_object_names_follow_the_azure_layer_inputs() -> None:
    stack = model({"keyvault_cookie_secret_name": "session"})
    assert stack["errors"] == []
    assert stack["secrets"]["keyvault_objects"] == {
        "client_id": "oauth2-proxy-client-id",
        "client_secret": "oauth2-proxy-client-secret",
        "cookie_secret": "session",
    }
