"""Protected apps rendered through playbooks/cluster.yml: one Ingress per app with its own
authorization, the demo apps switchable, and deny by default."""

from __future__ import annotations

import json
import typing as t

import pytest

from .conftest import Render, RenderProfile

AUTH = "nginx.ingress.kubernetes.io/auth-"
AUTH_URL = "http://oauth2-proxy.oauth2-proxy.svc.cluster.local:4180/oauth2/auth"
SIGNIN = "https://$host/oauth2/start?rd=$escaped_request_uri"
DEFAULT_HEADERS = "X-Auth-Request-User,X-Auth-Request-Email,X-Auth-Request-Groups"
TWO_APPS = {
    "zerotrust_aks_apps": [
        {
            "name": "shop",
            "namespace": "shop",
            "host": "shop.render.test",
            "allowed_groups": ["shop-buyers", "shop-admins"],
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"},
        },
        {
            "name": "wiki",
            "namespace": "docs",
            "service": "wiki-web",
            "port": 8080,
            "path": "/wiki",
            "allowed_groups": ["wiki-readers"],
            "headers": ["user", "email", "access_token"],
        },
    ]
}


def run(render_profile: RenderProfile, values: dict[str, t.Any], profile: str = "local", check: bool = True) -> Render:
    return render_profile(profile, "-e", json.dumps(values), check=check)


def failed(render: Render) -> str:
    output = render.result.stdout + render.result.stderr
    assert render.result.returncode != 0, output
    assert not render.directory.exists() or not any(render.directory.iterdir()), "files were rendered"
    return output


@pytest.fixture(scope="module")
def two_apps(render_profile: RenderProfile) -> Render:
    return run(render_profile, TWO_APPS)


def test_two_apps_get_two_ingresses_with_their_own_groups(two_apps: Render) -> None:
    shop = two_apps.get("Ingress", "shop", "shop")
    wiki = two_apps.get("Ingress", "docs", "wiki")
    assert shop["metadata"]["annotations"][AUTH + "url"] == AUTH_URL + "?allowed_groups=shop-buyers,shop-admins"
    assert wiki["metadata"]["annotations"][AUTH + "url"] == AUTH_URL + "?allowed_groups=wiki-readers"
    for ingress in (shop, wiki):
        assert ingress["metadata"]["annotations"][AUTH + "signin"] == SIGNIN
        assert ingress["spec"]["ingressClassName"] == "nginx"
    assert shop["metadata"]["annotations"][AUTH + "response-headers"] == DEFAULT_HEADERS
    assert shop["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "8m"
    assert shop["spec"]["tls"] == [{"hosts": ["shop.render.test"], "secretName": "zerotrust-aks-tls"}]
    (rule,) = wiki["spec"]["rules"]
    assert rule["host"] == "colors.render.test"
    assert rule["http"]["paths"] == [
        {
            "path": "/wiki",
            "pathType": "Prefix",
            "backend": {"service": {"name": "wiki-web", "port": {"number": 8080}}},
        }
    ]


def test_the_demo_app_keeps_the_global_rule_and_its_affinity(two_apps: Render) -> None:
    web = two_apps.get("Ingress", "colors-web", "colors-web")
    annotations = web["metadata"]["annotations"]
    assert annotations[AUTH + "url"] == AUTH_URL
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert annotations["nginx.ingress.kubernetes.io/session-cookie-name"] == "colors-web-affinity"


def test_token_headers_reach_only_the_app_that_asked_for_them(two_apps: Render) -> None:
    headers = {
        (i["metadata"]["namespace"], i["metadata"]["name"]): i["metadata"]["annotations"].get(AUTH + "response-headers")
        for i in two_apps.of_kind("Ingress")
        if AUTH + "url" in i["metadata"]["annotations"]
    }
    assert headers == {
        ("colors-web", "colors-web"): DEFAULT_HEADERS,
        ("shop", "shop"): DEFAULT_HEADERS,
        ("docs", "wiki"): "X-Auth-Request-User,X-Auth-Request-Email,X-Auth-Request-Access-Token",
    }


def test_the_apps_namespaces_are_neither_created_nor_taken_over(two_apps: Render) -> None:
    namespaces = {ns["metadata"]["name"] for ns in two_apps.of_kind("Namespace")}
    assert not {"shop", "docs"} & namespaces
    in_app_namespaces = [
        (obj["kind"], obj["metadata"]["name"])
        for obj in two_apps.objects.values()
        if obj["metadata"].get("namespace") in ("shop", "docs")
    ]
    # Render mode writes no Secrets; applied, the TLS Secret joins the Ingress there.
    assert sorted(in_app_namespaces) == [("Ingress", "shop"), ("Ingress", "wiki")]


def test_oauth2_proxy_serves_every_app_host(two_apps: Render) -> None:
    ingress = two_apps.get("Ingress", "oauth2-proxy", "oauth2-proxy")
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts == {"colors.render.test", "shop.render.test"}


def test_the_defaults_pass_no_tokens_to_any_app(render_profile: RenderProfile) -> None:
    render = render_profile("local")
    for ingress in render.of_kind("Ingress"):
        headers = ingress["metadata"]["annotations"].get(AUTH + "response-headers", "")
        assert "Authorization" not in headers and "Access-Token" not in headers, ingress["metadata"]["name"]


@pytest.mark.parametrize("profile", ["local", "aks"])
def test_demo_apps_off_renders_no_colors_objects(render_profile: RenderProfile, profile: str) -> None:
    render = run(render_profile, {"zerotrust_aks_demo_apps": False, **TWO_APPS}, profile)
    colors = [
        name
        for name, obj in render.objects.items()
        if "colors" in obj["metadata"]["name"] or obj["metadata"].get("namespace", "").startswith("colors")
    ]
    assert colors == []
    ingresses = sorted((i["metadata"]["namespace"], i["metadata"]["name"]) for i in render.of_kind("Ingress"))
    assert ingresses == [("docs", "wiki"), ("oauth2-proxy", "oauth2-proxy"), ("shop", "shop")]


def test_the_role_defaults_alone_fail_with_how_to_allow_people(render_profile: RenderProfile) -> None:
    output = failed(run(render_profile, {"zerotrust_aks_allowed_groups": []}, check=False))
    for hint in (
        "Nobody is allowed in yet",
        "zerotrust_aks_allowed_groups",
        "zerotrust_aks_app_role_assignments",
        "zerotrust_aks_apps",
        "zerotrust_aks_allow_all_tenant_users: true",
    ):
        assert hint in output, output
    assert "Compute the ingress-nginx controller objects" not in output, "a component role ran after the error"


def test_email_domains_alone_do_not_let_anybody_in(render_profile: RenderProfile) -> None:
    values = {"zerotrust_aks_allowed_groups": [], "zerotrust_aks_email_domains": ["render.test"]}
    assert "Nobody is allowed in yet" in failed(run(render_profile, values, check=False))


def test_the_explicit_opt_out_renders(render_profile: RenderProfile) -> None:
    values = {"zerotrust_aks_allowed_groups": [], "zerotrust_aks_allow_all_tenant_users": True}
    render = run(render_profile, values)
    assert "zerotrust_aks_allow_all_tenant_users is true" in render.result.stdout
    assert render.get("Ingress", "colors-web", "colors-web")


BAD_APPS = [
    ({"name": "shop", "namespace": "shop", "headers": ["cookie"]}, ["zerotrust_aks_apps", "headers"]),
    ({"name": "shop"}, ["zerotrust_aks_apps", "namespace"]),
    ({"name": "shop", "namespace": "kube-system", "path": "/s"}, ["zerotrust_aks_apps[0] (shop).namespace", "system"]),
    ({"name": "shop", "namespace": "oauth2-proxy", "path": "/s"}, ["zerotrust_aks_apps[0] (shop).namespace"]),
    ({"name": "shop", "namespace": "shop"}, ["zerotrust_aks_apps[0] (shop)", "colors-web already serves"]),
    ({"name": "shop", "namespace": "shop", "path": "shop"}, ["zerotrust_aks_apps[0] (shop).path"]),
    (
        {
            "name": "shop",
            "namespace": "shop",
            "path": "/s",
            "annotations": {"nginx.ingress.kubernetes.io/auth-url": "x"},
        },
        ["zerotrust_aks_apps[0] (shop).annotations", "auth-url is refused"],
    ),
    (
        {
            "name": "shop",
            "namespace": "shop",
            "path": "/s",
            "annotations": {"nginx.ingress.kubernetes.io/server-snippet": "return 200;"},
        },
        ["zerotrust_aks_apps[0] (shop).annotations", "server-snippet is refused"],
    ),
    ({"name": "Shop", "namespace": "shop"}, ["zerotrust_aks_apps[0].name"]),
]


@pytest.mark.parametrize(("app", "named"), BAD_APPS, ids=[str(i) for i in range(len(BAD_APPS))])
def test_bad_app_entries_fail_naming_the_variable_and_the_field(
    render_profile: RenderProfile, app: dict[str, t.Any], named: list[str]
) -> None:
    output = failed(run(render_profile, {"zerotrust_aks_apps": [app]}, check=False))
    for text in named:
        assert text in output, output
