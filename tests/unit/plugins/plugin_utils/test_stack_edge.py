# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the edge and TLS part of the stack model: what each edge admits, where the TLS
Secret lives, who issues it, and the inputs each edge refuses."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import yaml
from ansible_collections.zerotrust.aks.plugins.plugin_utils import _stack

REPO = Path(__file__).resolve().parents[4]
DEFAULTS: dict[str, t.Any] = yaml.safe_load((REPO / "roles" / "stack" / "defaults" / "main.yml").read_text())
BASE = {"zerotrust_aks_host": "colors.example.com", "zerotrust_aks_allowed_groups": ["zerotrust-users"]}
GATEWAY = {"zerotrust_aks_edge": "gateway-api"}
CERT_MANAGER = {"zerotrust_aks_tls_mode": "cert-manager"}
SHOP = {"name": "shop", "namespace": "shop", "host": "shop.example.com"}


def model(**user: t.Any) -> dict[str, t.Any]:
    """The model as the stack role computes it: inventory values beat the role's defaults."""
    user = {**BASE, **user}
    merged = {**DEFAULTS, **{k: v for k, v in user.items() if k in DEFAULTS}}
    stack: dict[str, t.Any] = _stack.compute(merged, user)
    return stack


def errors_of(**user: t.Any) -> list[str]:
    return list(model(**user)["errors"])


def test_the_default_edge_is_ingress_nginx_as_before() -> None:
    stack = model()
    assert stack["errors"] == []
    assert stack["edge"] == {
        "kind": "ingress-nginx",
        "namespace": "ingress-nginx",
        "install": True,
        "class": "nginx",
        "trusted_proxies": [],
        "signin_url": "https://$host/oauth2/start?rd=$escaped_request_uri",
    }
    assert stack["ingress_controller"] == "ingress-nginx"
    assert stack["stack_namespaces"] == ["ingress-nginx", "oauth2-proxy", "colors-web", "colors-api"]
    assert stack["tls"]["namespaces"] == ["oauth2-proxy", "colors-web"]
    assert stack["tls"]["cert_manager"] is None
    assert stack["apps"][0]["signin_url"] == "https://$host/oauth2/start?rd=$escaped_request_uri"
    assert stack["teardown_crds"] is False


def test_the_gateway_edge_puts_everything_the_edge_reads_in_its_namespaces() -> None:
    stack = model(**GATEWAY, zerotrust_aks_apps=[SHOP])
    assert stack["errors"] == []
    assert stack["edge"] == {
        "kind": "gateway-api",
        "namespace": "traefik",
        "install": True,
        "implementation": "traefik",
        "crds": "if-absent",
        "route_namespace": "oauth2-proxy",
        "trusted_proxies": [],
        "signin_url": "/oauth2/start?rd={url}",
        "gateway": {
            "name": "zerotrust-aks",
            "namespace": "traefik",
            "class": "zerotrust-aks",
            "https_listener": "https",
            "http_listener": "http",
            "https_port": 8443,
            "http_port": 8000,
        },
    }
    # The Gateway reads its certificate from its own namespace only; no app namespace gets it.
    assert stack["tls"]["namespaces"] == ["traefik"]
    assert stack["tls"]["hosts"] == ["colors.example.com", "shop.example.com"]
    assert stack["stack_namespaces"] == ["traefik", "oauth2-proxy", "colors-web", "colors-api"]
    assert stack["ingress_controller"] == "none", "no ingress-nginx objects with the gateway edge"
    assert {"namespace": "traefik", "name": "traefik"} in stack["deployments"]
    assert [app["signin_url"] for app in stack["apps"]] == ["/oauth2/start?rd={url}"] * 2
    assert stack["apps"][1]["auth_url"] == stack["oauth2_proxy"]["auth_url"]


def test_a_renamed_instance_names_the_gateway_and_its_class() -> None:
    stack = model(**GATEWAY, zerotrust_aks_instance="shop-edge", zerotrust_aks_gateway_namespace="edge")
    assert stack["errors"] == []
    assert stack["edge"]["gateway"]["name"] == "shop-edge"
    assert stack["edge"]["gateway"]["class"] == "shop-edge"
    assert stack["edge"]["namespace"] == stack["namespaces"]["gateway"] == "edge"
    assert stack["tls"]["namespaces"] == ["edge"]


def test_the_component_input_of_the_gateway_namespace_is_followed() -> None:
    stack = model(**GATEWAY, gateway_api_namespace="edge")
    assert stack["errors"] == []
    assert stack["edge"]["gateway"]["namespace"] == "edge"
    conflict = errors_of(**GATEWAY, gateway_api_namespace="edge", zerotrust_aks_gateway_namespace="gw")
    assert (
        len(conflict) == 1
        and "gateway_api_namespace" in conflict[0]
        and "zerotrust_aks_gateway_namespace" in conflict[0]
    )


def test_a_gateway_the_cluster_already_runs_needs_its_class_and_is_never_owned() -> None:
    errors = errors_of(**GATEWAY, zerotrust_aks_gateway_install=False)
    assert len(errors) == 1 and errors[0].startswith("zerotrust_aks_gateway_class must name the GatewayClass"), errors
    stack = model(
        **GATEWAY,
        zerotrust_aks_gateway_install=False,
        zerotrust_aks_gateway_class="traefik",
        zerotrust_aks_gateway_namespace="kube-ingress",
    )
    assert stack["errors"] == [], "a controller the cluster runs may live in any namespace"
    assert stack["edge"]["install"] is False
    assert stack["edge"]["gateway"]["class"] == "traefik"
    assert "kube-ingress" not in stack["stack_namespaces"]
    assert not [d for d in stack["deployments"] if d["namespace"] == "kube-ingress"]
    assert stack["tls"]["namespaces"] == ["kube-ingress"]


@pytest.mark.parametrize("namespace", ["kube-system", "default"])
def test_an_installed_gateway_may_not_take_a_system_namespace(namespace: str) -> None:
    errors = errors_of(**GATEWAY, zerotrust_aks_gateway_namespace=namespace)
    assert any(e.startswith("zerotrust_aks_gateway_namespace is") and "system namespace" in e for e in errors), errors


def test_the_gateway_shares_no_namespace_with_a_component() -> None:
    errors = errors_of(**GATEWAY, zerotrust_aks_gateway_namespace="oauth2-proxy")
    assert errors == [
        'zerotrust_aks_gateway_namespace and zerotrust_aks_oauth2_proxy_namespace are both "oauth2-proxy"; each '
        "component needs a namespace of its own (their NetworkPolicies admit by namespace)."
    ]


def test_the_other_edges_namespace_takes_no_part() -> None:
    # ingress-nginx edge: the gateway input keeps its default and is not checked against the others.
    assert errors_of(zerotrust_aks_gateway_namespace="oauth2-proxy") == []
    # gateway edge: the ingress-nginx namespace neither reserved nor owned.
    stack = model(**GATEWAY, zerotrust_aks_apps=[{**SHOP, "namespace": "ingress-nginx"}])
    assert stack["errors"] == []
    assert "ingress-nginx" not in stack["stack_namespaces"]


def test_an_app_may_not_live_in_the_gateway_namespace() -> None:
    errors = errors_of(**GATEWAY, zerotrust_aks_apps=[{**SHOP, "namespace": "traefik"}])
    assert errors == [
        'zerotrust_aks_apps[0] (shop).namespace is "traefik", the namespace of the stack\'s gateway (teardown removes '
        "it): put the app in a namespace of its own."
    ]


def test_the_ingress_inputs_are_reported_as_ignored_with_the_gateway_edge() -> None:
    stack = model(**GATEWAY, zerotrust_aks_ingress_class="edge", zerotrust_aks_ingress_controller="none")
    assert stack["errors"] == []
    (warning,) = [w for w in stack["warnings"] if "no effect" in w]
    assert warning.startswith("zerotrust_aks_ingress_controller, zerotrust_aks_ingress_class have no effect")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("zerotrust_aks_edge", "istio", "zerotrust_aks_edge must be one of ingress-nginx, gateway-api"),
        (
            "zerotrust_aks_gateway_implementation",
            "envoy",
            "zerotrust_aks_gateway_implementation must be one of traefik",
        ),
        ("zerotrust_aks_gateway_crds", "always", "zerotrust_aks_gateway_crds must be one of if-absent, never"),
        ("zerotrust_aks_gateway_install", "yes", "zerotrust_aks_gateway_install must be true or false"),
        ("zerotrust_aks_gateway_class", "Traefik!", "zerotrust_aks_gateway_class must be a GatewayClass name"),
        ("zerotrust_aks_gateway_namespace", "Edge", "zerotrust_aks_gateway_namespace must be a namespace name"),
        (
            "zerotrust_aks_tls_mode",
            "letsencrypt",
            "zerotrust_aks_tls_mode must be one of selfsigned, existing, cert-manager",
        ),
        ("zerotrust_aks_teardown_crds", "true", "zerotrust_aks_teardown_crds must be true or false"),
    ],
)
def test_bad_edge_inputs_are_refused_naming_the_variable_and_the_choices(
    variable: str, value: str, message: str
) -> None:
    errors = errors_of(**{**GATEWAY, variable: value})
    assert any(error.startswith(message) for error in errors), errors


def test_user_annotations_are_refused_with_the_gateway_edge() -> None:
    app = {**SHOP, "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}}
    errors = errors_of(**GATEWAY, zerotrust_aks_apps=[app])
    assert errors == [
        "zerotrust_aks_apps[0] (shop).annotations: nginx.ingress.kubernetes.io/proxy-body-size are ingress-nginx "
        "annotations and have no effect with zerotrust_aks_edge gateway-api; remove them."
    ]
    assert errors_of(zerotrust_aks_apps=[app]) == [], "ingress-nginx takes them"


def test_app_names_are_unique_in_the_route_namespace() -> None:
    apps = [SHOP, {**SHOP, "namespace": "store", "path": "/store"}]
    assert errors_of(zerotrust_aks_apps=apps) == [], "ingress-nginx puts each Ingress in its app's namespace"
    (error,) = errors_of(**GATEWAY, zerotrust_aks_apps=apps)
    assert error.startswith('zerotrust_aks_apps[1] (shop): another app in shop has the name "shop"')
    (error,) = errors_of(**GATEWAY, zerotrust_aks_apps=[{"name": "colors-web", "namespace": "web", "path": "/w"}])
    assert "another app in colors-web" in error, "the demo app's route is taken too"


@pytest.mark.parametrize("name", ["oauth2-proxy", "http-to-https"])
def test_the_stacks_own_route_names_are_refused_for_apps(name: str) -> None:
    (error,) = errors_of(**GATEWAY, zerotrust_aks_apps=[{**SHOP, "name": name}])
    assert error.startswith(f'zerotrust_aks_apps[0] ({name}).name "{name}" is the name of a route the stack makes')


def test_trusted_proxies_come_from_the_oauth2_proxy_input() -> None:
    stack = model(**GATEWAY, oauth2_proxy_trusted_proxy_ips=["10.244.0.0/16"])
    assert stack["edge"]["trusted_proxies"] == ["10.244.0.0/16"]
    errors = errors_of(oauth2_proxy_trusted_proxy_ips=["10.244.0.0/16", "traefik"])
    assert errors == [
        "oauth2_proxy_trusted_proxy_ips must list IP addresses or CIDR ranges such as 10.244.0.0/16; these are not: "
        "['traefik']."
    ]


# cert-manager --------------------------------------------------------------------------------


def test_cert_manager_defaults_to_the_ca_issuer_the_collection_creates() -> None:
    stack = model(**GATEWAY, **CERT_MANAGER)
    assert stack["errors"] == []
    assert stack["tls"]["mode"] == "cert-manager"
    assert stack["tls"]["cert_manager"] == {
        "issuer": {"kind": "ClusterIssuer", "name": "zerotrust-aks-ca"},
        "create": "ca",
        "install": False,
        "namespace": "cert-manager",
        "acme": None,
    }
    assert "cert-manager" not in stack["stack_namespaces"], "not installed: the user's namespace"


def test_installing_cert_manager_makes_its_namespace_the_stacks() -> None:
    stack = model(**CERT_MANAGER, zerotrust_aks_cert_manager_install=True)
    assert stack["errors"] == []
    assert stack["stack_namespaces"][-1] == "cert-manager"
    errors = errors_of(
        **CERT_MANAGER, zerotrust_aks_cert_manager_install=True, zerotrust_aks_cert_manager_namespace="kube-system"
    )
    assert any(
        e.startswith('zerotrust_aks_cert_manager_namespace is "kube-system", a system namespace') for e in errors
    )
    errors = errors_of(**CERT_MANAGER, zerotrust_aks_cert_manager_namespace="oauth2-proxy")
    assert any("also a namespace of the stack's components" in e for e in errors), errors


@pytest.mark.parametrize(
    ("edge", "solver"),
    [
        (
            GATEWAY,
            {
                "gatewayHTTPRoute": {
                    "parentRefs": [
                        {
                            "group": "gateway.networking.k8s.io",
                            "kind": "Gateway",
                            "name": "zerotrust-aks",
                            "namespace": "traefik",
                            "sectionName": "http",
                        }
                    ]
                }
            },
        ),
        ({}, {"ingress": {"ingressClassName": "nginx"}}),
    ],
)
def test_acme_solves_http01_through_the_chosen_edge(edge: dict[str, str], solver: dict[str, t.Any]) -> None:
    stack = model(
        **edge,
        **CERT_MANAGER,
        zerotrust_aks_cert_manager_issuer_create="acme",
        zerotrust_aks_acme_email="ops@example.com",
    )
    assert stack["errors"] == []
    cert_manager = stack["tls"]["cert_manager"]
    assert cert_manager["issuer"] == {"kind": "ClusterIssuer", "name": "zerotrust-aks-acme"}
    assert cert_manager["acme"] == {
        "server": "https://acme-v02.api.letsencrypt.org/directory",
        "email": "ops@example.com",
        "solver": solver,
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"zerotrust_aks_cert_manager_issuer_create": "acme"}, "zerotrust_aks_acme_email must be the e-mail address"),
        (
            {
                "zerotrust_aks_cert_manager_issuer_create": "acme",
                "zerotrust_aks_acme_email": "ops@example.com",
                "zerotrust_aks_acme_server": "http://acme.example.com/directory",
            },
            "zerotrust_aks_acme_server must be the https URL of an ACME directory",
        ),
        (
            {"zerotrust_aks_cert_manager_issuer_create": "none"},
            "zerotrust_aks_cert_manager_issuer.name must name an existing",
        ),
        (
            {"zerotrust_aks_cert_manager_issuer_create": "vault"},
            "zerotrust_aks_cert_manager_issuer_create must be one of",
        ),
        (
            {"zerotrust_aks_cert_manager_issuer": {"kind": "Issuer", "name": ""}},
            "zerotrust_aks_cert_manager_issuer.kind is Issuer, but the issuer",
        ),
        (
            {"zerotrust_aks_cert_manager_issuer": {"kind": "Vault", "name": "x"}},
            "zerotrust_aks_cert_manager_issuer.kind must be one of ClusterIssuer, Issuer",
        ),
        (
            {"zerotrust_aks_cert_manager_issuer": {"kind": "Issuer", "name": "Site CA"}},
            "zerotrust_aks_cert_manager_issuer.name must be an issuer name",
        ),
        ({"zerotrust_aks_cert_manager_issuer": "letsencrypt"}, "zerotrust_aks_cert_manager_issuer must be a mapping"),
    ],
)
def test_bad_cert_manager_inputs_are_refused_naming_the_variable(values: dict[str, t.Any], message: str) -> None:
    errors = errors_of(**CERT_MANAGER, **values)
    assert any(error.startswith(message) for error in errors), errors


def test_a_named_issuer_is_used_as_given() -> None:
    stack = model(
        **CERT_MANAGER,
        zerotrust_aks_cert_manager_issuer={"kind": "Issuer", "name": "site-ca"},
        zerotrust_aks_cert_manager_issuer_create="none",
    )
    assert stack["errors"] == []
    assert stack["tls"]["cert_manager"]["issuer"] == {"kind": "Issuer", "name": "site-ca"}


def test_cert_manager_inputs_do_not_matter_in_other_modes() -> None:
    assert errors_of(zerotrust_aks_cert_manager_issuer_create="acme") == []


def test_the_session_cookie_name_is_the_models() -> None:
    """The gateway edge hands refreshed session cookies to the browser by name."""
    assert model()["oauth2_proxy"]["cookie_name"] == "__Host-oauth2-proxy"
    assert model(oauth2_proxy_cookie_name="__Host-sso")["oauth2_proxy"]["cookie_name"] == "__Host-sso"
    assert errors_of(oauth2_proxy_cookie_name="a b") == [
        'oauth2_proxy_cookie_name must be a cookie name (letters, digits, _ . -); got "a b".'
    ]
