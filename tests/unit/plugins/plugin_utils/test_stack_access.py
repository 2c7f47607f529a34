# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the access part of the stack model: deny by default, app roles and
assignments, sessions, client authentication and the protected apps list."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import yaml
from ansible_collections.zerotrust.aks.plugins.plugin_utils import _stack

REPO = Path(__file__).resolve().parents[4]
DEFAULTS: dict[str, t.Any] = yaml.safe_load((REPO / "roles" / "stack" / "defaults" / "main.yml").read_text())
HOST = {"zerotrust_aks_host": "colors.example.com"}
GROUP = {"zerotrust_aks_allowed_groups": ["zerotrust-users"]}
AKS = {"zerotrust_aks_platform": "aks"}
GUID = "0f0e0d0c-0b0a-0908-0706-050403020100"
AUTH_URL = "http://oauth2-proxy.oauth2-proxy.svc.cluster.local:4180/oauth2/auth"


def model(**inputs: t.Any) -> dict[str, t.Any]:
    merged = {**DEFAULTS, **HOST, **inputs}
    stack: dict[str, t.Any] = _stack.compute(merged, {**HOST, **inputs})
    return stack


def errors_of(**inputs: t.Any) -> list[str]:
    return list(model(**inputs)["errors"])


def the_nobody_error(errors: list[str]) -> str:
    (error,) = [error for error in errors if error.startswith("Nobody is allowed in yet")]
    return error


# Deny by default ---------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["local", "aks"])
def test_the_role_defaults_alone_allow_nobody_and_say_how_to_allow_people(platform: str) -> None:
    errors = errors_of(zerotrust_aks_platform=platform)
    error = the_nobody_error(errors)
    for hint in (
        "zerotrust_aks_allowed_groups",
        "zerotrust_aks_app_role_assignments",
        "zerotrust_aks_apps",
        "zerotrust_aks_allow_all_tenant_users: true",
        "colors-web",
    ):
        assert hint in error, error


def test_email_domains_alone_are_not_authorization() -> None:
    error = the_nobody_error(errors_of(zerotrust_aks_email_domains=["example.com"]))
    assert "zerotrust_aks_allowed_groups" in error


@pytest.mark.parametrize("purpose", ["teardown", "verify"])
def test_teardown_and_verify_do_not_need_an_allowed_group(purpose: str) -> None:
    assert errors_of(zerotrust_aks_purpose=purpose) == []


@pytest.mark.parametrize(
    "inputs",
    [
        GROUP,
        {"zerotrust_aks_allow_all_tenant_users": True},
        {**AKS, "zerotrust_aks_app_role_assignments": [{"principal_id": GUID, "principal_type": "Group"}]},
        {
            "zerotrust_aks_demo_apps": False,
            "zerotrust_aks_apps": [{"name": "shop", "namespace": "shop", "allowed_groups": ["buyers"]}],
        },
    ],
    ids=["allowed-groups", "allow-all", "aks-assignment", "every-app-guarded"],
)
def test_each_way_of_allowing_people_is_enough(inputs: dict[str, t.Any]) -> None:
    stack = model(**inputs)
    assert stack["errors"] == []
    assert stack["authorization"]["configured"] is True


def test_one_guarded_app_does_not_guard_the_others() -> None:
    apps = [
        {"name": "shop", "namespace": "shop", "allowed_groups": ["buyers"]},
        {"name": "wiki", "namespace": "wiki", "path": "/wiki"},
    ]
    error = the_nobody_error(errors_of(zerotrust_aks_demo_apps=False, zerotrust_aks_apps=apps))
    assert "apps without allowed_groups: wiki" in error


def test_assignments_without_required_assignment_and_groups_claim_are_not_enough() -> None:
    errors = errors_of(
        **AKS,
        zerotrust_aks_groups_claim="groups",
        zerotrust_aks_app_role_assignment_required=False,
        zerotrust_aks_app_role_assignments=[{"principal_id": GUID}],
    )
    the_nobody_error(errors)


def test_allow_all_is_warned_about() -> None:
    stack = model(zerotrust_aks_allow_all_tenant_users=True)
    assert any("zerotrust_aks_allow_all_tenant_users" in warning for warning in stack["warnings"])


# Authorization model -----------------------------------------------------------------------


def test_authorization_defaults_on_local() -> None:
    authz = model(**GROUP)["authorization"]
    assert authz == {
        "groups_claim": "groups",
        "allowed_groups": ["zerotrust-users"],
        "email_domains": ["*"],
        "allow_all_tenant_users": False,
        "app_roles": [
            {
                "value": "colors.user",
                "display_name": "Colors user",
                "description": "Signs in to the apps behind zerotrust.aks",
            }
        ],
        "assignment_required": True,
        "assignments": [],
        "configured": True,
    }


def test_on_aks_the_roles_claim_lets_in_any_declared_role_by_default() -> None:
    stack = model(**AKS, zerotrust_aks_app_role_assignments=[{"principal_id": GUID.upper()}])
    authz = stack["authorization"]
    assert stack["errors"] == []
    assert authz["groups_claim"] == "roles"
    assert authz["allowed_groups"] == ["colors.user"]
    # The one role is the default; the id is kept in the form Graph returns it.
    assert authz["assignments"] == [{"principal_id": GUID, "principal_type": "Group", "role": "colors.user"}]


def test_explicit_allowed_groups_replace_the_role_values() -> None:
    authz = model(**AKS, zerotrust_aks_allowed_groups=["colors.admin"])["authorization"]
    assert authz["allowed_groups"] == ["colors.admin"]


def test_the_groups_claim_can_be_chosen() -> None:
    authz = model(**AKS, **GROUP, zerotrust_aks_groups_claim="groups")["authorization"]
    assert authz["groups_claim"] == "groups"
    assert authz["allowed_groups"] == ["zerotrust-users"]


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (
            {"zerotrust_aks_allowed_groups": ["a,b"]},
            "zerotrust_aks_allowed_groups[0] must be a group or app role value",
        ),
        ({"zerotrust_aks_allowed_groups": "zerotrust-users"}, "zerotrust_aks_allowed_groups must be a list"),
        ({"zerotrust_aks_allowed_groups": ["x", "x"]}, 'zerotrust_aks_allowed_groups[1] repeats "x"'),
        ({"zerotrust_aks_groups_claim": "my claim"}, "zerotrust_aks_groups_claim must be empty"),
        ({"zerotrust_aks_email_domains": ["not a domain"]}, "zerotrust_aks_email_domains[0] must be"),
        ({"zerotrust_aks_email_domains": []}, "zerotrust_aks_email_domains must list at least one domain"),
        ({"zerotrust_aks_allow_all_tenant_users": "yes"}, "zerotrust_aks_allow_all_tenant_users must be true or false"),
        (
            {"zerotrust_aks_app_roles": [{"value": "colors user"}]},
            "zerotrust_aks_app_roles[0].value must be an app role value",
        ),
        (
            {"zerotrust_aks_app_roles": [{"value": "a"}, {"value": "a"}]},
            'zerotrust_aks_app_roles[1].value repeats "a"',
        ),
        ({"zerotrust_aks_app_roles": [{"value": "a", "id": 1}]}, "zerotrust_aks_app_roles[0] has unknown fields id"),
        (
            {**AKS, "zerotrust_aks_app_role_assignments": [{"principal_id": "group-a"}]},
            "zerotrust_aks_app_role_assignments[0].principal_id must be the object id (a GUID)",
        ),
        (
            {**AKS, "zerotrust_aks_app_role_assignments": [{"principal_id": GUID, "principal_type": "App"}]},
            "zerotrust_aks_app_role_assignments[0].principal_type must be one of Group, User",
        ),
        (
            {**AKS, "zerotrust_aks_app_role_assignments": [{"principal_id": GUID, "role": "admin"}]},
            "zerotrust_aks_app_role_assignments[0].role must be the value of one of zerotrust_aks_app_roles "
            "(colors.user)",
        ),
        (
            {"zerotrust_aks_app_role_assignments": [{"principal_id": GUID}]},
            "zerotrust_aks_app_role_assignments applies to the aks platform only",
        ),
    ],
)
def test_bad_authorization_inputs_are_refused_naming_the_variable(inputs: dict[str, t.Any], expected: str) -> None:
    errors = errors_of(**{**GROUP, **inputs})
    assert any(error.startswith(expected) for error in errors), errors


def test_a_role_without_display_name_or_description_gets_them_from_its_value() -> None:
    roles = model(**GROUP, zerotrust_aks_app_roles=[{"value": "shop.buyer"}])["authorization"]["app_roles"]
    assert roles == [{"value": "shop.buyer", "display_name": "shop.buyer", "description": "shop.buyer"}]


# Sessions, identity, client authentication -------------------------------------------------


def test_sessions_default_to_eight_hours_refreshed_hourly() -> None:
    assert model(**GROUP)["session"] == {"lifetime": "8h", "refresh": "1h"}


@pytest.mark.parametrize(
    ("lifetime", "refresh", "expected"),
    [
        ("8h", "8h", "zerotrust_aks_session_refresh (8h) must be shorter than zerotrust_aks_session_lifetime (8h)"),
        ("1h", "90m", "zerotrust_aks_session_refresh (90m) must be shorter"),
        ("8 hours", "1h", "zerotrust_aks_session_lifetime must be a Go duration"),
        ("8h", "0s", "zerotrust_aks_session_refresh must be a Go duration longer than zero"),
        ("8h", 60, "zerotrust_aks_session_refresh must be a Go duration"),
    ],
)
def test_bad_sessions_are_refused(lifetime: t.Any, refresh: t.Any, expected: str) -> None:
    errors = errors_of(**GROUP, zerotrust_aks_session_lifetime=lifetime, zerotrust_aks_session_refresh=refresh)
    assert any(error.startswith(expected) for error in errors), errors


def test_short_sessions_for_tests_are_fine() -> None:
    stack = model(**GROUP, zerotrust_aks_session_lifetime="2m", zerotrust_aks_session_refresh="30s")
    assert stack["errors"] == []


def test_workload_identity_is_the_default_and_addon_is_warned_about() -> None:
    role = {"zerotrust_aks_allowed_groups": ["colors.user"]}
    assert model(**AKS, **role)["identity"]["mode"] == "workload"
    assert model(**AKS, **role)["warnings"] == []
    warnings = model(**AKS, **GROUP, zerotrust_aks_identity_mode="addon")["warnings"]
    assert any("zerotrust_aks_identity_mode is addon" in warning for warning in warnings)


def test_federated_client_auth_drops_the_client_secret() -> None:
    stack = model(**AKS, **GROUP, zerotrust_aks_client_auth="federated")
    assert stack["errors"] == []
    assert stack["oauth2_proxy"]["client_auth"] == "federated"
    assert sorted(stack["secrets"]["names"]) == ["client_id", "cookie_secret"]
    assert model(**AKS, **GROUP)["oauth2_proxy"]["client_auth"] == "secret"
    assert sorted(model(**AKS, **GROUP)["secrets"]["names"]) == ["client_id", "client_secret", "cookie_secret"]


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"zerotrust_aks_client_auth": "certificate"}, "zerotrust_aks_client_auth must be one of secret, federated"),
        ({"zerotrust_aks_client_auth": "federated"}, "zerotrust_aks_client_auth federated needs the aks platform"),
        (
            {**AKS, "zerotrust_aks_client_auth": "federated", "zerotrust_aks_identity_mode": "addon"},
            "zerotrust_aks_client_auth federated needs zerotrust_aks_identity_mode workload",
        ),
    ],
)
def test_bad_client_auth_is_refused(inputs: dict[str, t.Any], expected: str) -> None:
    errors = errors_of(**GROUP, **inputs)
    assert any(error.startswith(expected) for error in errors), errors


# Apps --------------------------------------------------------------------------------------


def test_the_demo_app_is_the_first_protected_app() -> None:
    stack = model(**GROUP)
    (web,) = stack["apps"]
    assert web["name"] == "colors-web" and web["namespace"] == "colors-web" and web["demo"] is True
    assert web["auth_url"] == AUTH_URL
    assert web["signin_url"] == "https://$host/oauth2/start?rd=$escaped_request_uri"
    assert web["response_headers"] == ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"]
    assert web["annotations"]["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert stack["hosts"] == ["colors.example.com"]
    assert stack["demo_apps"] is True
    assert stack["tls"]["namespaces"] == ["oauth2-proxy", "colors-web"]


def test_without_the_demo_only_the_edge_remains() -> None:
    stack = model(**GROUP, zerotrust_aks_demo_apps=False)
    assert stack["errors"] == []
    assert stack["apps"] == []
    assert stack["stack_namespaces"] == ["ingress-nginx", "oauth2-proxy"]
    assert stack["deployments"] == [{"namespace": "oauth2-proxy", "name": "oauth2-proxy"}]
    assert stack["tls"]["namespaces"] == ["oauth2-proxy"]


def test_user_apps_follow_the_demo_with_defaults_filled_in() -> None:
    apps = [
        {"name": "shop", "namespace": "shop", "allowed_groups": ["buyers", "sellers"], "host": "shop.example.com"},
        {
            "name": "wiki",
            "namespace": "docs",
            "service": "wiki-web",
            "port": 8080,
            "path": "/wiki",
            "headers": ["email"],
        },
    ]
    stack = model(**GROUP, zerotrust_aks_apps=apps)
    assert stack["errors"] == []
    web, shop, wiki = stack["apps"]
    assert web["demo"] is True
    assert shop == {
        "name": "shop",
        "namespace": "shop",
        "service": "shop",
        "port": 80,
        "host": "shop.example.com",
        "path": "/",
        "allowed_groups": ["buyers", "sellers"],
        "headers": ["user", "email", "groups"],
        "response_headers": ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"],
        "annotations": {},
        "auth_url": AUTH_URL + "?allowed_groups=buyers,sellers",
        "signin_url": "https://$host/oauth2/start?rd=$escaped_request_uri",
        "demo": False,
    }
    assert (wiki["service"], wiki["port"], wiki["host"], wiki["path"]) == (
        "wiki-web",
        8080,
        "colors.example.com",
        "/wiki",
    )
    assert wiki["auth_url"] == AUTH_URL
    assert wiki["response_headers"] == ["X-Auth-Request-Email"]
    assert stack["hosts"] == ["colors.example.com", "shop.example.com"]
    assert stack["tls"]["hosts"] == stack["hosts"]
    assert stack["tls"]["namespaces"] == ["oauth2-proxy", "colors-web", "shop", "docs"]
    # The user's namespaces are never the stack's: neither created nor deleted.
    assert "shop" not in stack["stack_namespaces"] and "docs" not in stack["stack_namespaces"]


def test_group_values_are_url_encoded_in_the_auth_url() -> None:
    apps = [{"name": "shop", "namespace": "shop", "path": "/shop", "allowed_groups": ["Shop Buyers", "a&b"]}]
    shop = model(**GROUP, zerotrust_aks_apps=apps)["apps"][1]
    assert shop["auth_url"] == AUTH_URL + "?allowed_groups=Shop%20Buyers,a%26b"


def test_token_headers_are_opt_in() -> None:
    apps = [{"name": "api", "namespace": "api", "path": "/api", "headers": ["user", "access_token", "authorization"]}]
    stack = model(**GROUP, zerotrust_aks_apps=apps)
    web, api = stack["apps"]
    assert "Authorization" not in web["response_headers"]
    assert api["response_headers"] == ["X-Auth-Request-User", "X-Auth-Request-Access-Token", "Authorization"]


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("shop", "zerotrust_aks_apps[0] must be a mapping"),
        ({"namespace": "shop"}, "zerotrust_aks_apps[0].name must be a Kubernetes name"),
        ({"name": "shop"}, "zerotrust_aks_apps[0] (shop).namespace must be the name of an existing namespace"),
        (
            {"name": "shop", "namespace": "kube-system"},
            'zerotrust_aks_apps[0] (shop).namespace is "kube-system", a system',
        ),
        (
            {"name": "shop", "namespace": "oauth2-proxy"},
            'zerotrust_aks_apps[0] (shop).namespace is "oauth2-proxy", the namespace of the stack\'s oauth2-proxy',
        ),
        (
            {"name": "shop", "namespace": "colors-api"},
            'zerotrust_aks_apps[0] (shop).namespace is "colors-api", the namespace of the stack\'s colors-api',
        ),
        (
            {"name": "shop", "namespace": "shop", "port": "http"},
            "zerotrust_aks_apps[0] (shop).port must be the Service port number",
        ),
        ({"name": "shop", "namespace": "shop", "port": 70000}, "zerotrust_aks_apps[0] (shop).port must be"),
        ({"name": "shop", "namespace": "shop", "service": "Shop"}, "zerotrust_aks_apps[0] (shop).service must be"),
        (
            {"name": "shop", "namespace": "shop", "host": "Shop.example.com"},
            "zerotrust_aks_apps[0] (shop).host must be",
        ),
        (
            {"name": "shop", "namespace": "shop", "path": "shop"},
            "zerotrust_aks_apps[0] (shop).path must be an absolute URL path",
        ),
        ({"name": "shop", "namespace": "shop", "path": "/(.*)"}, "zerotrust_aks_apps[0] (shop).path must be"),
        (
            {"name": "shop", "namespace": "shop", "allowed_groups": "buyers"},
            "zerotrust_aks_apps[0] (shop).allowed_groups must be a list",
        ),
        (
            {"name": "shop", "namespace": "shop", "headers": ["cookie"]},
            "zerotrust_aks_apps[0] (shop).headers[0] must be one of user, email",
        ),
        ({"name": "shop", "namespace": "shop", "tls": True}, "zerotrust_aks_apps[0] (shop) has unknown fields tls"),
        (
            {"name": "shop", "namespace": "shop", "annotations": {"nginx.ingress.kubernetes.io/auth-url": "http://x"}},
            "zerotrust_aks_apps[0] (shop).annotations: nginx.ingress.kubernetes.io/auth-url is refused",
        ),
        (
            {
                "name": "shop",
                "namespace": "shop",
                "annotations": {"nginx.ingress.kubernetes.io/configuration-snippet": "x"},
            },
            "zerotrust_aks_apps[0] (shop).annotations: nginx.ingress.kubernetes.io/configuration-snippet is refused",
        ),
        (
            {"name": "shop", "namespace": "shop", "annotations": {"example.com/x": "y"}},
            'zerotrust_aks_apps[0] (shop).annotations: "example.com/x" is not an ingress-nginx annotation',
        ),
        (
            {"name": "shop", "namespace": "shop", "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": True}},
            "zerotrust_aks_apps[0] (shop).annotations.nginx.ingress.kubernetes.io/ssl-redirect must be a string",
        ),
    ],
)
def test_bad_app_entries_are_refused_naming_the_variable_and_field(app: t.Any, expected: str) -> None:
    errors = errors_of(**GROUP, zerotrust_aks_apps=[app])
    assert any(error.startswith(expected) for error in errors), errors


def test_two_apps_on_one_host_and_path_are_refused() -> None:
    apps = [{"name": "shop", "namespace": "shop"}, {"name": "wiki", "namespace": "wiki"}]
    errors = errors_of(**GROUP, zerotrust_aks_demo_apps=False, zerotrust_aks_apps=apps)
    assert errors == [
        "zerotrust_aks_apps[1] (wiki) serves colors.example.com/, which shop already serves; "
        "give it another host or path."
    ]


def test_an_app_may_not_take_the_demo_apps_place() -> None:
    errors = errors_of(**GROUP, zerotrust_aks_apps=[{"name": "shop", "namespace": "shop"}])
    assert any("which colors-web already serves" in error for error in errors), errors


def test_two_apps_with_one_name_in_one_namespace_are_refused() -> None:
    apps = [{"name": "shop", "namespace": "shop", "path": "/a"}, {"name": "shop", "namespace": "shop", "path": "/b"}]
    errors = errors_of(**GROUP, zerotrust_aks_demo_apps=False, zerotrust_aks_apps=apps)
    assert errors == ["zerotrust_aks_apps[1] repeats the Ingress shop/shop."]


@pytest.mark.parametrize("name", ["colors_web_proxy_buffer_size", "colors_web_affinity_cookie_name"])
def test_the_retired_colors_web_ingress_inputs_say_where_they_went(name: str) -> None:
    stack = _stack.compute({**DEFAULTS, **HOST, **GROUP}, {name: "x"})
    assert any(error.startswith(f"{name} is no longer an input") for error in stack["errors"])


def test_on_aks_a_value_that_is_no_declared_role_is_warned_about() -> None:
    apps = [{"name": "shop", "namespace": "shop", "path": "/shop", "allowed_groups": ["shop.buyer"]}]
    stack = model(**AKS, zerotrust_aks_allowed_groups=["colors.user", "colors.admin"], zerotrust_aks_apps=apps)
    assert stack["errors"] == []
    warnings = [w for w in stack["warnings"] if "is not one of zerotrust_aks_app_roles" in w]
    assert [w.split(",")[0] for w in warnings] == [
        "zerotrust_aks_allowed_groups lists colors.admin",
        "allowed_groups of shop lists shop.buyer",
    ]
    assert not [w for w in model(**AKS, **GROUP, zerotrust_aks_groups_claim="groups")["warnings"] if "app_roles" in w]
