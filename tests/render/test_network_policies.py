"""The stack's NetworkPolicies, rendered: default-deny in every namespace the stack owns, and the
paths each component needs, checked by evaluating the policies as a NetworkPolicy engine would.

``allowed`` below implements the NetworkPolicy semantics the stack relies on (isolation by
policyTypes, peers by namespace/pod selectors and ipBlocks, named ports resolved on the
destination pod). It leaves out what the stack never uses (endPort ranges, SCTP) and one
exception no policy can change: traffic from the pod's own node, which is always allowed.
"""

from __future__ import annotations

import ipaddress
import json
import typing as t
from dataclasses import dataclass, field

import pytest

from .conftest import PROFILES, Render, RenderProfile

NAME_LABEL = "kubernetes.io/metadata.name"
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {NAME_LABEL: "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
DNS_PORTS = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]


# --- A NetworkPolicy evaluator -----------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    """A pod: its namespace, labels and named container ports."""

    name: str
    namespace: str
    labels: t.Mapping[str, str] = field(default_factory=dict)
    ports: t.Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class External:
    """An address outside the cluster's pods (internet, IMDS, the API server, a node)."""

    address: str


Endpoint = Pod | External


def selects(selector: t.Mapping[str, t.Any], labels: t.Mapping[str, str]) -> bool:
    """A LabelSelector against a label set ({} selects everything)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def peer_matches(peer: t.Mapping[str, t.Any], other: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        # Pod addresses are left out of ipBlocks, as the API documents ("should be cluster-external IPs").
        if not isinstance(other, External):
            return False
        address = ipaddress.ip_address(other.address)
        block = peer["ipBlock"]
        if address not in ipaddress.ip_network(block["cidr"], strict=False):
            return False
        return not any(address in ipaddress.ip_network(cidr, strict=False) for cidr in block.get("except", []))
    if not isinstance(other, Pod):
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {NAME_LABEL: other.namespace}):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), other.labels)


def port_matches(rule_ports: list[t.Mapping[str, t.Any]] | None, target: Endpoint, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    for rule_port in rule_ports:
        if rule_port.get("protocol", "TCP") != protocol:
            continue
        value = rule_port.get("port")
        if value is None:
            return True
        if isinstance(value, str):
            # A named port means the destination pod's container port of that name.
            if isinstance(target, Pod) and target.ports.get(value) == port:
                return True
        elif value == port:
            return True
    return False


def policy_types(policy: t.Mapping[str, t.Any]) -> list[str]:
    spec = policy["spec"]
    return list(spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else [])))


def direction_allows(
    policies: list[dict[str, t.Any]], pod: Pod, other: Endpoint, target: Endpoint, port: int, protocol: str, kind: str
) -> bool:
    """Whether ``pod``'s policies of ``kind`` (Ingress/Egress) let the connection through."""
    applicable = [
        policy
        for policy in policies
        if policy["metadata"]["namespace"] == pod.namespace
        and selects(policy["spec"].get("podSelector", {}), pod.labels)
        and kind in policy_types(policy)
    ]
    if not applicable:
        return True  # not isolated in this direction
    key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    for policy in applicable:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            peer_ok = not peers or any(peer_matches(peer, other, policy["metadata"]["namespace"]) for peer in peers)
            if peer_ok and port_matches(rule.get("ports"), target, port, protocol):
                return True
    return False


def allowed(
    policies: list[dict[str, t.Any]], source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """Is a connection from ``source`` to ``destination`` on ``port`` allowed by ``policies``?"""
    if isinstance(source, Pod) and not direction_allows(
        policies, source, destination, destination, port, protocol, "Egress"
    ):
        return False
    return not isinstance(destination, Pod) or direction_allows(
        policies, destination, source, destination, port, protocol, "Ingress"
    )


def test_the_evaluator_follows_the_networkpolicy_rules() -> None:
    """The evaluator itself, on hand-written policies (a test that cannot fail is a defect)."""
    web = Pod("web", "a", {"app": "web"}, {"http": 8080})
    api = Pod("api", "b", {"app": "api"})
    deny = {"metadata": {"namespace": "b"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    assert allowed([], web, api, 80)
    assert not allowed([deny], web, api, 80)
    assert allowed([deny], api, web, 8080) is False  # api's egress is denied
    admit = {
        "metadata": {"namespace": "a"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"namespaceSelector": {"matchLabels": {NAME_LABEL: "c"}}}], "ports": [{"port": "http"}]}
            ],
        },
    }
    client = Pod("client", "c", {"app": "client"})
    assert allowed([admit], client, web, 8080)
    assert not allowed([admit], client, web, 9090)
    assert not allowed([admit], api, web, 8080)
    egress = {
        "metadata": {"namespace": "c"},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}]}],
        },
    }
    assert allowed([egress], client, External("203.0.113.7"), 443)
    assert not allowed([egress], client, External("169.254.169.254"), 80)
    assert not allowed([egress], client, web, 8080), "ipBlocks do not match pods"


# --- The rendered stack ------------------------------------------------------------------------


def policies_of(render: Render) -> list[dict[str, t.Any]]:
    return render.of_kind("NetworkPolicy")


def rendered_pods(render: Render) -> dict[str, Pod]:
    """One Pod per rendered workload, named after it."""
    pods = {}
    for obj in render.objects.values():
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        template = obj["spec"]["template"]
        ports = {
            port["name"]: port["containerPort"]
            for container in template["spec"]["containers"]
            for port in container.get("ports", [])
            if "name" in port
        }
        name = obj["metadata"]["name"]
        pods[name] = Pod(name, obj["metadata"]["namespace"], template["metadata"]["labels"], ports)
    return pods


# Pods the stack does not deploy, and addresses outside the cluster.
KUBE_DNS = Pod("coredns", "kube-system", {"k8s-app": "kube-dns"})
KONNECTIVITY = Pod("konnectivity-agent", "kube-system", {"app": "konnectivity-agent"})
INTRUDER = Pod("intruder", "intruder", {"app": "intruder"})
PROMETHEUS = Pod("prometheus", "monitoring", {"app": "prometheus"})
INTERNET = External("203.0.113.7")
IMDS = External("169.254.169.254")
ENTRA = External("20.190.160.1")


def default_deny_namespaces(render: Render) -> set[str]:
    return {
        policy["metadata"]["namespace"]
        for policy in policies_of(render)
        if policy["spec"].get("podSelector") in ({}, None)
        and sorted(policy_types(policy)) == ["Egress", "Ingress"]
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
    }


def test_every_owned_namespace_denies_by_default(rendered: Render) -> None:
    owned = {obj["metadata"]["name"] for obj in rendered.of_kind("Namespace")}
    assert owned == {"ingress-nginx", "oauth2-proxy", "colors-web", "colors-api"}
    assert default_deny_namespaces(rendered) == owned
    assert {policy["metadata"]["namespace"] for policy in policies_of(rendered)} == owned


def test_no_policy_for_a_namespace_the_stack_does_not_own(render_profile: RenderProfile) -> None:
    """With an ingress controller the cluster already runs, its namespace is left alone."""
    render = render_profile("aks", "-e", json.dumps({"zerotrust_aks_ingress_controller": "none"}))
    namespaces = {policy["metadata"]["namespace"] for policy in policies_of(render)}
    assert namespaces == {"oauth2-proxy", "colors-web", "colors-api"}
    assert default_deny_namespaces(render) == namespaces


def egress_rules_of(render: Render, pod: Pod) -> list[dict[str, t.Any]]:
    return [
        rule
        for policy in policies_of(render)
        if policy["metadata"]["namespace"] == pod.namespace
        and selects(policy["spec"].get("podSelector", {}), pod.labels)
        and "Egress" in policy_types(policy)
        for rule in policy["spec"].get("egress") or []
    ]


def test_colors_web_may_reach_only_dns_and_colors_api(rendered: Render) -> None:
    """/getcolor fetches a URL from a cookie: the fence is what keeps it from being an SSRF."""
    web = rendered_pods(rendered)["colors-web"]
    rules = egress_rules_of(rendered, web)
    api_peer = {
        "namespaceSelector": {"matchLabels": {NAME_LABEL: "colors-api"}},
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/name": "colors-api", "app.kubernetes.io/instance": "colors-api"}
        },
    }
    assert rules == [{"to": [DNS_PEER], "ports": DNS_PORTS}, {"to": [api_peer]}]


@pytest.mark.parametrize("profile", PROFILES)
def test_the_intended_traffic_matrix(render_profile: RenderProfile, profile: str) -> None:
    render = render_profile(profile)
    policies = policies_of(render)
    pods = rendered_pods(render)
    controller, proxy = pods["ingress-nginx-controller"], pods["oauth2-proxy"]
    web, api = pods["colors-web"], pods["colors-api"]
    certgen = pods["ingress-nginx-admission-create"]
    stray_web = Pod("debug", "colors-web", {"app": "debug"})
    expected: list[tuple[Endpoint, Endpoint, int, str, bool]] = [
        # The edge.
        (INTERNET, controller, 443, "TCP", True),
        (INTERNET, controller, 80, "TCP", True),
        (INTERNET, controller, 10254, "TCP", False),
        (INTERNET, controller, 8443, "TCP", False),
        (INTERNET, controller, 10246, "TCP", False),
        (KONNECTIVITY, controller, 8443, "TCP", True),
        (INTRUDER, controller, 8443, "TCP", False),
        (PROMETHEUS, controller, 10254, "TCP", False),
        (controller, proxy, 4180, "TCP", True),
        (controller, web, 8080, "TCP", True),
        (controller, api, 8080, "TCP", False),
        (controller, KUBE_DNS, 53, "UDP", True),
        (controller, External("20.50.60.70"), 443, "TCP", True),  # the API server (0.0.0.0/0 by default)
        (controller, INTERNET, 80, "TCP", False),
        (certgen, External("20.50.60.70"), 443, "TCP", True),
        (certgen, INTERNET, 80, "TCP", False),
        (certgen, KUBE_DNS, 53, "UDP", False),
        (INTRUDER, certgen, 8443, "TCP", False),
        # oauth2-proxy: the controller in, the IdP and DNS out.
        (proxy, ENTRA, 443, "TCP", True),
        (proxy, KUBE_DNS, 53, "UDP", True),
        (proxy, IMDS, 80, "TCP", False),
        (proxy, api, 8080, "TCP", False),
        (proxy, web, 8080, "TCP", False),
        (INTRUDER, proxy, 4180, "TCP", False),
        (web, proxy, 4180, "TCP", False),
        # colors-web: the controller in; DNS and colors-api out, nothing else.
        (web, api, 8080, "TCP", True),
        (web, KUBE_DNS, 53, "UDP", True),
        (web, KUBE_DNS, 53, "TCP", True),
        (web, INTERNET, 443, "TCP", False),
        (web, INTERNET, 80, "TCP", False),
        (web, IMDS, 80, "TCP", False),
        (web, External("10.0.0.1"), 443, "TCP", False),
        (web, proxy, 4180, "TCP", False),
        (web, controller, 443, "TCP", False),
        (INTRUDER, web, 8080, "TCP", False),
        (proxy, web, 8080, "TCP", False),
        # colors-api: only colors-web in, only DNS out.
        (INTRUDER, api, 8080, "TCP", False),
        (api, INTERNET, 443, "TCP", False),
        (api, web, 8080, "TCP", False),
        (api, KUBE_DNS, 53, "UDP", True),
        # Default-deny catches pods the stack did not deploy in its own namespaces: colors-api
        # admits the colors-web namespace, but a stray pod there may send nothing at all.
        (stray_web, api, 8080, "TCP", False),
        (stray_web, KUBE_DNS, 53, "UDP", False),
        (INTRUDER, stray_web, 8080, "TCP", False),
    ]
    wrong = [
        f"{getattr(src, 'name', src)} -> {getattr(dst, 'name', dst)}:{port}/{proto} should be "
        f"{'allowed' if want else 'denied'}"
        for src, dst, port, proto, want in expected
        if allowed(policies, src, dst, port, proto) is not want
    ]
    assert not wrong, "\n".join(wrong)


def test_webhook_and_metrics_follow_the_inputs(render_profile: RenderProfile) -> None:
    render = render_profile(
        "aks",
        "-e",
        json.dumps(
            {
                "ingress_nginx_webhook_allowed_cidrs": ["10.224.0.0/16", "192.0.2.100"],
                "ingress_nginx_webhook_from_konnectivity": False,
                "ingress_nginx_metrics_namespace": "monitoring",
                "ingress_nginx_apiserver_cidrs": ["20.50.60.70"],
            }
        ),
    )
    policies = policies_of(render)
    pods = rendered_pods(render)
    controller, certgen = pods["ingress-nginx-controller"], pods["ingress-nginx-admission-create"]
    assert allowed(policies, External("10.224.3.4"), controller, 8443)
    assert allowed(policies, External("192.0.2.100"), controller, 8443)
    assert not allowed(policies, External("192.0.2.101"), controller, 8443)
    assert not allowed(policies, KONNECTIVITY, controller, 8443)
    assert allowed(policies, PROMETHEUS, controller, 10254)
    assert not allowed(policies, INTRUDER, controller, 10254)
    assert not allowed(policies, PROMETHEUS, controller, 10246)
    for pod in (controller, certgen):
        assert allowed(policies, pod, External("20.50.60.70"), 443)
        assert allowed(policies, pod, External("20.50.60.70"), 6443)
        assert not allowed(policies, pod, External("20.50.60.71"), 443)
    policy = render.get("NetworkPolicy", "ingress-nginx", "ingress-nginx-controller")
    peers = [peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])]
    blocks = [peer["ipBlock"]["cidr"] for peer in peers if "ipBlock" in peer]
    assert blocks == ["10.224.0.0/16", "192.0.2.100/32"], "a bare address must become a /32"


def test_without_the_webhook_port_8443_stays_closed(render_profile: RenderProfile) -> None:
    render = render_profile("local", "-e", json.dumps({"ingress_nginx_admission_webhook": False}))
    policies = policies_of(render)
    controller = rendered_pods(render)["ingress-nginx-controller"]
    assert not allowed(policies, KONNECTIVITY, controller, 8443)
    names = {policy["metadata"]["name"] for policy in policies if policy["metadata"]["namespace"] == "ingress-nginx"}
    assert names == {"default-deny", "ingress-nginx-controller"}


def test_user_apps_get_no_policy_but_the_controller_reaches_them(render_profile: RenderProfile) -> None:
    """The stack does not own a user app's namespace: it adds no policy there, and lets the
    controller (which does have an egress fence) reach it."""
    apps = [{"name": "shop", "namespace": "shop", "host": "shop.aks.render.test", "allowed_groups": ["shoppers"]}]
    render = render_profile(
        "aks",
        "-e",
        json.dumps({"zerotrust_aks_apps": apps, "ingress_nginx_backend_namespaces": ["legacy"]}),
    )
    policies = policies_of(render)
    assert not [policy for policy in policies if policy["metadata"]["namespace"] in ("shop", "legacy")]
    controller = rendered_pods(render)["ingress-nginx-controller"]
    shop, legacy = Pod("shop", "shop", {"app": "shop"}), Pod("old", "legacy", {"app": "old"})
    assert allowed(policies, controller, shop, 8000)
    assert allowed(policies, controller, legacy, 8080)
    assert not allowed(policies, controller, INTRUDER, 8080)
    assert not allowed(policies, rendered_pods(render)["colors-web"], shop, 8000)


def test_without_the_demo_apps_only_the_edge_is_fenced(render_profile: RenderProfile) -> None:
    render = render_profile(
        "aks",
        "-e",
        json.dumps({"zerotrust_aks_demo_apps": False, "zerotrust_aks_apps": [{"name": "shop", "namespace": "shop"}]}),
    )
    assert default_deny_namespaces(render) == {"ingress-nginx", "oauth2-proxy"}
    assert {policy["metadata"]["namespace"] for policy in policies_of(render)} == {"ingress-nginx", "oauth2-proxy"}
    policies = policies_of(render)
    controller = rendered_pods(render)["ingress-nginx-controller"]
    assert allowed(policies, controller, Pod("shop", "shop", {"app": "shop"}), 8080)
    assert not allowed(policies, controller, Pod("web", "colors-web", {"app": "web"}), 8080)


BAD_INPUTS = [
    ({"ingress_nginx_webhook_allowed_cidrs": ["10.0.0.0/8", "api-server"]}, "ingress_nginx_webhook_allowed_cidrs"),
    ({"ingress_nginx_apiserver_cidrs": []}, "ingress_nginx_apiserver_cidrs"),
    ({"ingress_nginx_apiserver_cidrs": ["10.0.0.0/33"]}, "ingress_nginx_apiserver_cidrs"),
    ({"ingress_nginx_metrics_namespace": "Monitoring"}, "ingress_nginx_metrics_namespace"),
    ({"ingress_nginx_backend_namespaces": ["shop", "Shop!"]}, "ingress_nginx_backend_namespaces"),
]


@pytest.mark.parametrize(("values", "named"), BAD_INPUTS, ids=[case[1] for case in BAD_INPUTS])
def test_bad_network_inputs_fail_before_anything_is_rendered(
    render_profile: RenderProfile, values: dict[str, t.Any], named: str
) -> None:
    render = render_profile("local", "-e", json.dumps(values), check=False)
    output = render.result.stdout + render.result.stderr
    assert render.result.returncode != 0, output
    assert named in output, output
    assert not render.directory.exists() or not any(render.directory.iterdir()), "files were rendered"
