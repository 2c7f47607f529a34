"""The gateway-api edge rendered (inventory/gateway.yml: the local profile, the demo and two apps of
a user's): every object valid for its schema (built-in kinds with kubernetes-validate --strict,
Gateway API and Traefik kinds against the CRDs the role vendors), checkov, and what a user relies
on: no route around the login, none to the API, a Gateway that admits routes from oauth2-proxy's
namespace only, an http listener that only redirects, Traefik reading only where it serves."""

from __future__ import annotations

import json
import re
import subprocess
import typing as t
from pathlib import Path

import jsonschema
import pytest
import yaml
from support.scans import assert_checkov_clean

from .conftest import REPO, Render, RenderProfile
from .test_network_policies import (
    DNS_PEER,
    INTERNET,
    INTRUDER,
    KUBE_DNS,
    Endpoint,
    External,
    Pod,
    allowed,
    rendered_pods,
)
from .test_render import CRD_FILES, KUBERNETES_VERSION, containers, strict

PROFILE = "gateway"
OAUTH2 = "oauth2-proxy"
GATEWAY_NS = "traefik"
AUTH_URL = "http://oauth2-proxy.oauth2-proxy.svc.cluster.local:4180/oauth2/auth"
SIGNIN_QUERY = "/oauth2/start?rd={url}"
HOSTS = ["colors.gateway.render.test", "shop.gateway.render.test"]
COOKIE = "__Host-oauth2-proxy"
# (name, namespace, service, port, host, path, auth address, identity headers) of every app.
APPS = [
    (
        "colors-web",
        "colors-web",
        "colors-web",
        80,
        HOSTS[0],
        "/",
        AUTH_URL,
        ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"],
    ),
    (
        "shop",
        "shop",
        "shop",
        80,
        HOSTS[1],
        "/",
        AUTH_URL + "?allowed_groups=shop-buyers,shop-admins",
        ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"],
    ),
    (
        "wiki",
        "docs",
        "wiki-web",
        8080,
        HOSTS[0],
        "/wiki",
        AUTH_URL + "?allowed_groups=wiki-readers",
        ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Preferred-Username"],
    ),
]
BUILTIN_API_VERSIONS = {
    "v1",
    "apps/v1",
    "policy/v1",
    "rbac.authorization.k8s.io/v1",
    "networking.k8s.io/v1",
    "apiextensions.k8s.io/v1",
}
CRD_FOLDERS = (REPO / "roles" / "gateway_api" / "files" / "crds", REPO / "roles" / "cert_manager" / "files" / "crds")


def versions() -> dict[str, str]:
    text = (REPO / "testbed" / "versions.env").read_text()
    return dict(re.findall(r"^([A-Z_]+)=(\S+)$", text, re.MULTILINE))


def vendored_crds() -> list[dict[str, t.Any]]:
    """The CRDs of the roles' files: each file is one v1 List (scripts/vendor_crds.py)."""
    crds = []
    for folder in CRD_FOLDERS:
        for path in sorted(folder.glob("*.yml")):
            documents = [doc for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader) if doc]
            assert [(d["apiVersion"], d["kind"]) for d in documents] == [("v1", "List")], path
            crds += documents[0]["items"]
    assert {crd["kind"] for crd in crds} == {"CustomResourceDefinition"}
    return crds


def schema_crds() -> list[dict[str, t.Any]]:
    """The vendored CRDs and those the render tests keep for kinds the collection does not ship
    (the Secrets Store CSI driver's SecretProviderClass, aks)."""
    kept = [doc for path in set(CRD_FILES.values()) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return vendored_crds() + kept


def crd_schemas() -> dict[tuple[str, str], dict[str, t.Any]]:
    """(apiVersion, kind) -> the strict schema of every served version of every vendored CRD."""
    schemas = {}
    for crd in schema_crds():
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served"):
                schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = strict(
                    version["schema"]["openAPIV3Schema"]
                )
    return schemas


@pytest.fixture(scope="module")
def schemas() -> dict[tuple[str, str], dict[str, t.Any]]:
    return crd_schemas()


@pytest.fixture(scope="module")
def gateway(render_profile: RenderProfile) -> Render:
    return render_profile(PROFILE)


def custom(render: Render, schemas: dict[tuple[str, str], t.Any]) -> dict[str, dict[str, t.Any]]:
    return {name: obj for name, obj in render.objects.items() if (obj["apiVersion"], obj["kind"]) in schemas}


def routes(render: Render) -> list[dict[str, t.Any]]:
    return render.of_kind("HTTPRoute")


# --- 1. Schemas --------------------------------------------------------------------------------


def test_builtin_kinds_validate_strictly(gateway: Render, schemas: dict[tuple[str, str], t.Any]) -> None:
    files = [gateway.directory / name for name in gateway.objects if name not in custom(gateway, schemas)]
    assert any("customresourcedefinition" in f.name for f in files), "the CRDs themselves are validated too"
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line for line in result.stdout.splitlines() if not line.startswith("INFO")]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
    assert result.stdout.count("INFO") == len(files)


def test_gateway_api_and_traefik_objects_validate_against_the_vendored_crds(
    gateway: Render, schemas: dict[tuple[str, str], t.Any]
) -> None:
    objects = custom(gateway, schemas)
    kinds = sorted({obj["kind"] for obj in objects.values()})
    assert kinds == ["Gateway", "GatewayClass", "HTTPRoute", "Middleware", "ReferenceGrant"]
    others = {obj["apiVersion"] for name, obj in gateway.objects.items() if name not in objects}
    assert others <= BUILTIN_API_VERSIONS, "every other object is a built-in kind, validated by kubernetes-validate"
    for name, obj in objects.items():
        try:
            jsonschema.validate(obj, schemas[(obj["apiVersion"], obj["kind"])])
        except jsonschema.ValidationError as error:
            pytest.fail(f"{name}: {error.message} at {list(error.absolute_path)}")


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "Middleware", "apiVersion": "traefik.io/v1alpha1", "spec": {"forwardAuth": {"adress": AUTH_URL}}},
        {
            "kind": "Middleware",
            "apiVersion": "traefik.io/v1alpha1",
            "spec": {"errors": {"statusRewrites": {"401": "x"}}},
        },
        {"kind": "HTTPRoute", "apiVersion": "gateway.networking.k8s.io/v1", "spec": {"rules": [{"filter": []}]}},
        {"kind": "Gateway", "apiVersion": "gateway.networking.k8s.io/v1", "spec": {"gatewayClassName": "x"}},
    ],
    ids=["misspelt-field", "wrong-type", "unknown-key", "missing-listeners"],
)
def test_the_crd_validation_rejects_what_the_api_server_would(
    bad: dict[str, t.Any], schemas: dict[tuple[str, str], t.Any]
) -> None:
    bad = dict(bad, metadata={"name": "x", "namespace": "y"})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schemas[(bad["apiVersion"], bad["kind"])])


def test_the_vendored_crds_are_rendered_and_created_only_where_absent(gateway: Render) -> None:
    rendered = {obj["metadata"]["name"]: obj for obj in gateway.of_kind("CustomResourceDefinition")}
    vendored = [crd for crd in vendored_crds() if crd["spec"]["group"] in ("gateway.networking.k8s.io", "traefik.io")]
    assert sorted(rendered) == sorted(crd["metadata"]["name"] for crd in vendored)
    assert len(rendered) == 6 + 10, "Gateway API's standard channel and every traefik.io kind"
    for name, crd in rendered.items():
        assert crd["metadata"]["annotations"]["zerotrust.aks/apply"] == "if-absent", name
        assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "zerotrust-aks", name


def test_the_vendored_files_are_the_pinned_versions() -> None:
    pins = versions()
    folder = CRD_FOLDERS[0]
    assert sorted(p.name for p in folder.glob("*.yml")) == [
        f"gateway-api-{pins['GATEWAY_API_VERSION']}.yml",
        f"traefik-{pins['TRAEFIK_VERSION']}.yml",
    ]
    defaults = yaml.safe_load((REPO / "roles" / "gateway_api" / "defaults" / "main.yml").read_text())
    assert defaults["gateway_api_traefik_image_tag"] == pins["TRAEFIK_VERSION"], "the tests run the release users get"
    role_vars = yaml.safe_load((REPO / "roles" / "gateway_api" / "vars" / "main.yml").read_text())
    assert role_vars["_gateway_api_crds_version"] == pins["GATEWAY_API_VERSION"]


# --- 2. Security scan --------------------------------------------------------------------------


def test_checkov_finds_nothing(gateway: Render) -> None:
    assert_checkov_clean(gateway.directory)


def test_every_checkov_skip_is_justified(gateway: Render) -> None:
    for name, obj in gateway.objects.items():
        for key, value in obj["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                check, _sep, reason = value.partition("=")
                assert re.fullmatch(r"CKV2?_K8S_\d+", check), f"{name}: {value}"
                assert len(reason.split()) >= 4, f"{name}: skip of {check} needs a reason"


def test_no_secret_value_appears_in_the_output(gateway: Render) -> None:
    values = [gateway.inventory_vars[k] for k in ("zerotrust_aks_client_secret", "zerotrust_aks_cookie_secret")]
    text = "\n".join(path.read_text() for path in gateway.directory.iterdir())
    output = gateway.result.stdout + gateway.result.stderr
    for value in values:
        assert value not in text and value not in output
    assert not gateway.of_kind("Secret")


def test_every_container_meets_the_restricted_profile(gateway: Render) -> None:
    (traefik,) = [c for name, _spec, c in containers(gateway) if name.endswith("-deployment-traefik.yaml")]
    context = traefik["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["runAsNonRoot"] is True
    assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
    assert {"cpu", "memory"} <= set(traefik["resources"]["limits"])
    namespace = gateway.get("Namespace", None, GATEWAY_NS)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# --- 3. What users rely on ---------------------------------------------------------------------


def test_there_is_no_ingress_and_no_route_to_the_api(gateway: Render) -> None:
    assert not gateway.of_kind("Ingress") and not gateway.of_kind("IngressClass")
    backends = [
        ref for route in routes(gateway) for rule in route["spec"]["rules"] for ref in rule.get("backendRefs", [])
    ]
    assert not [ref for ref in backends if ref.get("namespace") == "colors-api" or ref["name"] == "colors-api"]
    assert not [grant for grant in gateway.of_kind("ReferenceGrant") if grant["metadata"]["namespace"] == "colors-api"]


@pytest.mark.parametrize(("name", "namespace", "service", "port", "host", "path", "address", "headers"), APPS)
def test_every_app_route_sends_each_request_through_oauth2_proxy_first(
    gateway: Render,
    name: str,
    namespace: str,
    service: str,
    port: int,
    host: str,
    path: str,
    address: str,
    headers: list[str],
) -> None:
    route = gateway.get("HTTPRoute", OAUTH2, name)["spec"]
    assert route["hostnames"] == [host]
    assert [ref["sectionName"] for ref in route["parentRefs"]] == ["https"]
    (rule,) = route["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": path}}]
    assert rule["filters"] == [
        {"type": "ExtensionRef", "extensionRef": {"group": "traefik.io", "kind": "Middleware", "name": f"{name}-{m}"}}
        for m in ("signin", "auth")
    ], "signin must wrap auth, and nothing may come before them"
    assert rule["backendRefs"] == [
        {"group": "", "kind": "Service", "name": service, "namespace": namespace, "port": port}
    ]
    auth = gateway.get("Middleware", OAUTH2, f"{name}-auth")["spec"]
    assert auth == {
        "forwardAuth": {
            "address": address,
            "trustForwardHeader": False,
            "authResponseHeaders": headers,
            "addAuthCookiesToResponse": [COOKIE] + [f"{COOKIE}_{i}" for i in range(10)],
        }
    }
    signin = gateway.get("Middleware", OAUTH2, f"{name}-signin")["spec"]
    assert signin == {
        "errors": {
            "status": ["401"],
            "statusRewrites": {"401": 302},
            "service": {"name": "oauth2-proxy", "port": 4180},
            "query": SIGNIN_QUERY,
        }
    }


def test_the_gateway_admits_routes_from_the_oauth2_proxy_namespace_only(gateway: Render) -> None:
    spec = gateway.get("Gateway", GATEWAY_NS, "zerotrust-aks")["spec"]
    assert spec["gatewayClassName"] == "zerotrust-aks"
    listeners = {listener["name"]: listener for listener in spec["listeners"]}
    assert sorted(listeners) == ["http", "https"]
    https, http = listeners["https"], listeners["http"]
    assert (https["protocol"], https["port"], http["protocol"], http["port"]) == ("HTTPS", 8443, "HTTP", 8000)
    assert https["tls"] == {
        "mode": "Terminate",
        "certificateRefs": [{"group": "", "kind": "Secret", "name": "zerotrust-aks-tls"}],
    }
    assert https["allowedRoutes"]["namespaces"] == {
        "from": "Selector",
        "selector": {"matchLabels": {"kubernetes.io/metadata.name": OAUTH2}},
    }
    assert http["allowedRoutes"]["namespaces"] == {
        "from": "Selector",
        "selector": {
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": [OAUTH2]}]
        },
    }
    for listener in listeners.values():
        assert listener["allowedRoutes"]["kinds"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]
    for route in routes(gateway):
        assert route["metadata"]["namespace"] == OAUTH2, route["metadata"]["name"]
        for ref in route["spec"]["parentRefs"]:
            assert ref.get("sectionName") in ("http", "https"), "a route without a section attaches to both listeners"
            assert (ref["name"], ref["namespace"]) == ("zerotrust-aks", GATEWAY_NS)


def test_the_http_listener_only_redirects(gateway: Render) -> None:
    on_http = [r for r in routes(gateway) if any(p["sectionName"] == "http" for p in r["spec"]["parentRefs"])]
    assert [r["metadata"]["name"] for r in on_http] == ["http-to-https"]
    spec = on_http[0]["spec"]
    assert spec["hostnames"] == HOSTS
    assert spec["rules"] == [
        {"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}
    ], "no backend, no match: every plain-HTTP request gets the redirect and nothing else"


def test_oauth2_proxy_answers_on_every_host_without_filters(gateway: Render) -> None:
    spec = gateway.get("HTTPRoute", OAUTH2, "oauth2-proxy")["spec"]
    assert spec["hostnames"] == HOSTS
    assert [ref["sectionName"] for ref in spec["parentRefs"]] == ["https"]
    assert spec["rules"] == [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/oauth2"}}],
            "backendRefs": [{"group": "", "kind": "Service", "name": "oauth2-proxy", "port": 4180}],
        }
    ]


def test_reference_grants_open_exactly_the_apps_services(gateway: Render) -> None:
    grants = {g["metadata"]["namespace"]: g["spec"] for g in gateway.of_kind("ReferenceGrant")}
    assert sorted(grants) == ["colors-web", "docs", "shop"]
    for namespace, service in (("colors-web", "colors-web"), ("docs", "wiki-web"), ("shop", "shop")):
        assert grants[namespace] == {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": OAUTH2}],
            "to": [{"group": "", "kind": "Service", "name": service}],
        }


def traefik_args(render: Render, namespace: str = GATEWAY_NS) -> dict[str, str]:
    deployment = render.get("Deployment", namespace, "traefik")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(arg.partition("=")[::2] for arg in container["args"])


def test_traefik_serves_the_gateway_and_nothing_else(gateway: Render) -> None:
    args = traefik_args(gateway)
    assert not [flag for flag in args if flag.startswith(("--api", "--providers.kubernetesingress", "--metrics"))]
    assert args["--providers.kubernetesgateway"] == "true"
    assert args["--providers.kubernetesgateway.namespaces"].split(",") == [
        GATEWAY_NS,
        OAUTH2,
        "colors-web",
        "shop",
        "docs",
    ]
    assert args["--providers.kubernetescrd.namespaces"] == OAUTH2
    assert args["--providers.kubernetescrd.disableClusterScopeResources"] == "true"
    assert "--providers.kubernetescrd.allowCrossNamespace" not in args
    assert "--providers.kubernetescrd.allowExternalNameServices" not in args
    assert [k for k in args if "forwardedHeaders" in k] == [], "no client may set X-Forwarded-* through Traefik"
    gateway_spec = gateway.get("Gateway", GATEWAY_NS, "zerotrust-aks")["spec"]
    listeners = {listener["name"]: listener["port"] for listener in gateway_spec["listeners"]}
    assert args["--entryPoints.websecure.address"] == f":{listeners['https']}"
    assert args["--entryPoints.web.address"] == f":{listeners['http']}"
    service = gateway.get("Service", GATEWAY_NS, "traefik")["spec"]
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(80, "web"), (443, "websecure")]
    assert service["type"] == "LoadBalancer" and service["externalTrafficPolicy"] == "Local"
    image = gateway.get("Deployment", GATEWAY_NS, "traefik")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"docker.io/traefik:{versions()['TRAEFIK_VERSION']}"
    gateway_class = gateway.get("GatewayClass", None, "zerotrust-aks")
    assert gateway_class["spec"]["controllerName"] == "traefik.io/gateway-controller"


def test_traefik_reads_secrets_only_in_the_namespaces_it_serves(gateway: Render) -> None:
    roles = {r["metadata"]["name"]: r for r in gateway.of_kind("ClusterRole")}
    for binding in gateway.of_kind("ClusterRoleBinding"):
        rules = roles[binding["roleRef"]["name"]]["rules"]
        reads = {resource for rule in rules for resource in rule["resources"]}
        assert not reads & {"secrets", "configmaps", "services"}, "nothing namespaced cluster-wide"
    watch = [b for b in gateway.of_kind("RoleBinding") if b["roleRef"]["name"] == "zerotrust-aks-traefik-watch"]
    assert sorted(b["metadata"]["namespace"] for b in watch) == sorted(
        [GATEWAY_NS, OAUTH2, "colors-web", "shop", "docs"]
    )
    (crd_role,) = gateway.of_kind("Role")
    assert crd_role["metadata"]["namespace"] == OAUTH2
    assert {v for rule in crd_role["rules"] for v in rule["verbs"]} == {"get", "list", "watch"}
    writes = {
        (resource, verb)
        for role in [*roles.values(), crd_role]
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if verb not in ("get", "list", "watch")
    }
    assert all(resource.endswith("/status") and verb == "update" for resource, verb in writes), writes


def test_the_traffic_matrix_of_the_gateway_edge(gateway: Render) -> None:
    policies = gateway.of_kind("NetworkPolicy")
    pods = rendered_pods(gateway)
    traefik, proxy, web, api = pods["traefik"], pods["oauth2-proxy"], pods["colors-web"], pods["colors-api"]
    shop = Pod("shop", "shop", {"app": "shop"})
    nginx = Pod("controller", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
    expected: list[tuple[Endpoint, Endpoint, int, bool]] = [
        (INTERNET, traefik, 8443, True),
        (INTERNET, traefik, 8000, True),
        (INTERNET, traefik, 8080, False),  # ping: the kubelet only
        (INTRUDER, traefik, 9000, False),
        (traefik, proxy, 4180, True),
        (traefik, web, 8080, True),
        (traefik, shop, 8000, True),
        (traefik, api, 8080, False),
        (traefik, INTRUDER, 80, False),
        (traefik, INTERNET, 80, False),
        (traefik, External("20.50.60.70"), 443, True),  # the API server (0.0.0.0/0 by default)
        (nginx, proxy, 4180, False),  # the other edge's namespace is admitted nowhere
        (nginx, web, 8080, False),
        (INTRUDER, proxy, 4180, False),
        (api, traefik, 8443, False),
    ]
    wrong = [
        f"{getattr(s, 'name', s)} -> {getattr(d, 'name', d)}:{port} should be {'allowed' if want else 'denied'}"
        for s, d, port, want in expected
        if allowed(policies, s, d, port) is not want
    ]
    assert not wrong, "\n".join(wrong)
    assert allowed(policies, traefik, KUBE_DNS, 53, "UDP")
    policy = gateway.get("NetworkPolicy", GATEWAY_NS, "traefik")
    assert {"to": [DNS_PEER], "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]} in policy[
        "spec"
    ]["egress"]


# --- 4. The other switches of the edge ---------------------------------------------------------


def render(render_profile: RenderProfile, values: dict[str, t.Any], check: bool = True) -> Render:
    return render_profile(PROFILE, "-e", json.dumps(values), check=check)


def test_a_gateway_the_cluster_runs_gets_only_the_gateway_and_routes(render_profile: RenderProfile) -> None:
    result = render(
        render_profile,
        {
            "zerotrust_aks_gateway_install": False,
            "zerotrust_aks_gateway_class": "traefik",
            "zerotrust_aks_gateway_namespace": "edge",
        },
    )
    assert not [
        o for o in result.objects.values() if o["metadata"].get("namespace") == "edge" and o["kind"] != "Gateway"
    ]
    assert not result.of_kind("GatewayClass") and not result.of_kind("ClusterRole")
    assert "edge" not in {ns["metadata"]["name"] for ns in result.of_kind("Namespace")}
    assert result.get("Gateway", "edge", "zerotrust-aks")["spec"]["gatewayClassName"] == "traefik"
    peers = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in result.get("NetworkPolicy", OAUTH2, "oauth2-proxy")["spec"]["ingress"]
        for peer in rule["from"]
    ]
    assert peers == ["edge"], "oauth2-proxy admits the Gateway controller's namespace"
    assert result.of_kind("CustomResourceDefinition"), "CRDs still applied where absent"


def test_crds_never_leaves_them_out(render_profile: RenderProfile) -> None:
    result = render(render_profile, {"zerotrust_aks_gateway_crds": "never"})
    assert not result.of_kind("CustomResourceDefinition")
    assert result.of_kind("Gateway")


def test_renaming_the_namespaces_keeps_every_reference(render_profile: RenderProfile) -> None:
    result = render(
        render_profile, {"zerotrust_aks_gateway_namespace": "edge", "zerotrust_aks_oauth2_proxy_namespace": "auth"}
    )
    spec = result.get("Gateway", "edge", "zerotrust-aks")["spec"]
    for listener in spec["listeners"]:
        assert "auth" in json.dumps(listener["allowedRoutes"]) and OAUTH2 not in json.dumps(listener["allowedRoutes"])
    assert {r["metadata"]["namespace"] for r in routes(result)} == {"auth"}
    assert {m["metadata"]["namespace"] for m in result.of_kind("Middleware")} == {"auth"}
    for route in routes(result):
        assert {ref["namespace"] for ref in route["spec"]["parentRefs"]} == {"edge"}
    for grant in result.of_kind("ReferenceGrant"):
        assert grant["spec"]["from"][0]["namespace"] == "auth"
    args = traefik_args(result, "edge")
    assert args["--providers.kubernetesgateway.namespaces"].split(",")[:2] == ["edge", "auth"]
    assert args["--providers.kubernetescrd.namespaces"] == "auth"
    assert result.get("Middleware", "auth", "shop-auth")["spec"]["forwardAuth"]["address"].startswith(
        "http://oauth2-proxy.auth.svc.cluster.local:4180/oauth2/auth"
    )
    text = yaml.safe_dump_all(list(result.objects.values()))
    assert "namespace: traefik" not in text and "oauth2-proxy.oauth2-proxy" not in text


@pytest.mark.parametrize(
    ("values", "named"),
    [
        (
            {
                "zerotrust_aks_apps": [
                    {
                        "name": "shop",
                        "namespace": "shop",
                        "host": "shop.gateway.render.test",
                        "annotations": {"nginx.ingress.kubernetes.io/x": "y"},
                    }
                ]
            },
            "zerotrust_aks_apps[0] (shop).annotations",
        ),
        ({"zerotrust_aks_gateway_install": False}, "zerotrust_aks_gateway_class"),
        ({"zerotrust_aks_gateway_namespace": "kube-system"}, "zerotrust_aks_gateway_namespace"),
        ({"gateway_api_replicas": 0}, "gateway_api_replicas"),
        ({"gateway_api_apiserver_cidrs": ["api-server"]}, "gateway_api_apiserver_cidrs"),
    ],
    ids=["annotations", "class", "system-namespace", "replicas", "cidrs"],
)
def test_bad_values_fail_before_anything_is_rendered(
    render_profile: RenderProfile, values: dict[str, t.Any], named: str
) -> None:
    result = render(render_profile, values, check=False)
    output = result.result.stdout + result.result.stderr
    assert result.result.returncode != 0, output
    assert named in output, output
    assert not result.directory.exists() or not any(result.directory.iterdir()), "files were rendered"


def test_render_needs_no_kubeconfig(gateway: Render) -> None:
    assert "kubeconfig" not in (gateway.result.stdout + gateway.result.stderr).lower()
    assert isinstance(gateway.directory, Path) and gateway.result.returncode == 0


# --- 5. With cert-manager TLS (inventory/gateway-cert-manager.yml: aks, ACME, cert-manager installed)


@pytest.fixture(scope="module")
def with_cert_manager(render_profile: RenderProfile) -> Render:
    return render_profile("gateway-cert-manager")


def test_cert_manager_profile_validates_and_scans_clean(
    with_cert_manager: Render, schemas: dict[tuple[str, str], t.Any]
) -> None:
    objects = custom(with_cert_manager, schemas)
    kinds = {obj["kind"] for obj in objects.values()}
    assert {"Certificate", "ClusterIssuer", "Gateway", "HTTPRoute", "Middleware"} <= kinds
    for name, obj in objects.items():
        try:
            jsonschema.validate(obj, schemas[(obj["apiVersion"], obj["kind"])])
        except jsonschema.ValidationError as error:
            pytest.fail(f"{name}: {error.message} at {list(error.absolute_path)}")
    others = [n for n in with_cert_manager.objects if n not in objects]
    assert {with_cert_manager.objects[n]["apiVersion"] for n in others} <= BUILTIN_API_VERSIONS | {
        "admissionregistration.k8s.io/v1"
    }
    result = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "kubernetes-validate"),
            "--strict",
            "-k",
            KUBERNETES_VERSION,
            *(str(with_cert_manager.directory / n) for n in others),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line for line in result.stdout.splitlines() if not line.startswith("INFO")]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
    assert_checkov_clean(with_cert_manager.directory)


def test_the_site_certificate_is_issued_where_the_gateway_reads_it(with_cert_manager: Render) -> None:
    (certificate,) = [c for c in with_cert_manager.of_kind("Certificate") if c["metadata"]["namespace"] == GATEWAY_NS]
    spec = certificate["spec"]
    assert spec["secretName"] == "zerotrust-aks-tls"
    assert spec["dnsNames"] == ["colors.aks.render.test"]
    assert spec["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "zerotrust-aks-acme"}
    https = next(
        listener
        for listener in with_cert_manager.get("Gateway", GATEWAY_NS, "zerotrust-aks")["spec"]["listeners"]
        if listener["name"] == "https"
    )
    assert https["tls"]["certificateRefs"][0]["name"] == spec["secretName"]
    assert [c["metadata"]["namespace"] for c in with_cert_manager.of_kind("Certificate")] == [GATEWAY_NS], (
        "no app namespace needs the certificate on this edge"
    )


def test_acme_http01_is_answered_through_the_gateways_http_listener(with_cert_manager: Render) -> None:
    issuer = with_cert_manager.get("ClusterIssuer", None, "zerotrust-aks-acme")["spec"]["acme"]
    assert issuer["email"] == "ops@render.test"
    assert issuer["solvers"] == [
        {
            "http01": {
                "gatewayHTTPRoute": {
                    "parentRefs": [
                        {
                            "group": "gateway.networking.k8s.io",
                            "kind": "Gateway",
                            "name": "zerotrust-aks",
                            "namespace": GATEWAY_NS,
                            "sectionName": "http",
                        }
                    ]
                }
            }
        }
    ]
    listeners = {
        listener["name"]: listener["allowedRoutes"]["namespaces"]
        for listener in with_cert_manager.get("Gateway", GATEWAY_NS, "zerotrust-aks")["spec"]["listeners"]
    }
    # cert-manager makes the solver's HTTPRoute in the Certificate's namespace: the http listener
    # admits it; the https listener still takes routes from oauth2-proxy's namespace only.
    assert listeners["http"]["selector"]["matchExpressions"][0]["values"] == [OAUTH2, GATEWAY_NS]
    assert listeners["https"]["selector"] == {"matchLabels": {"kubernetes.io/metadata.name": OAUTH2}}
    policies = with_cert_manager.of_kind("NetworkPolicy")
    traefik = rendered_pods(with_cert_manager)["traefik"]
    solver = Pod("cm-acme-http-solver", GATEWAY_NS, {"acme.cert-manager.io/http01-solver": "true"})
    assert allowed(policies, traefik, solver, 8089)
    assert not allowed(policies, INTRUDER, solver, 8089)
    assert not allowed(policies, traefik, solver, 8080)
    assert not allowed(policies, solver, INTERNET, 443), "the solver calls nobody"


def test_a_ca_issuer_needs_no_route_on_the_http_listener(render_profile: RenderProfile) -> None:
    result = render_profile(
        "gateway-cert-manager", "-e", json.dumps({"zerotrust_aks_cert_manager_issuer_create": "ca"})
    )
    listeners = {
        listener["name"]: listener["allowedRoutes"]["namespaces"]
        for listener in result.get("Gateway", GATEWAY_NS, "zerotrust-aks")["spec"]["listeners"]
    }
    assert listeners["http"]["selector"]["matchExpressions"][0]["values"] == [OAUTH2]
    assert not [p for p in result.of_kind("NetworkPolicy") if p["metadata"]["name"] == "acme-http01-solver"]
    (site,) = [c for c in result.of_kind("Certificate") if c["metadata"]["namespace"] == GATEWAY_NS]
    assert site["spec"]["issuerRef"]["name"] == "zerotrust-aks-ca"
