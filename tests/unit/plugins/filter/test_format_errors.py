# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the format rules, the tests that expose them and the format_errors filter."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.aks.plugins.filter.stack import FilterModule, format_errors, model_conflicts
from ansible_collections.zerotrust.aks.plugins.module_utils import _validation as v
from ansible_collections.zerotrust.aks.plugins.test.formats import TestModule as FormatTests

CASES = [
    ("k8s_name", "oauth2-proxy", True),
    ("k8s_name", "a" * 63, True),
    ("k8s_name", "a" * 64, False),
    ("k8s_name", "Oauth2", False),
    ("k8s_name", "-x", False),
    ("k8s_subdomain", "zerotrust-aks.tls", True),
    ("k8s_subdomain", "a..b", False),
    ("label_value", "zerotrust-aks", True),
    ("label_value", "Zero_Trust.1", True),
    ("label_value", "a" * 64, False),
    ("label_value", "-x", False),
    ("label_value", "", False),
    ("data_key", "cookie-secret", True),
    ("data_key", "tls.crt", True),
    ("data_key", "..x", False),
    ("data_key", "a/b", False),
    ("resource_group", "rg-zerotrust_aks.(dev)", True),
    ("resource_group", "rg zerotrust", False),
    ("resource_group", "r" * 91, False),
    ("dns_name", "colors.example.com", True),
    ("dns_name", "localhost", False),
    ("dns_name", "COLORS.example.com", False),
    ("guid", "00000000-1111-2222-3333-444444444444", True),
    ("guid", "contoso", False),
    ("go_duration", "1h30m", True),
    ("go_duration", "5 m", False),
    ("nginx_size", "16k", True),
    ("nginx_size", "16 kb", False),
    ("image_digest", "sha256:" + "0" * 64, True),
    ("image_digest", "sha256:abc", False),
    ("keyvault_name", "kv-zerotrust", True),
    ("keyvault_name", "kv", False),
    ("keyvault_name", "kv-", False),
    ("keyvault_secret_name", "oauth2-proxy-cookie-secret", True),
    ("keyvault_secret_name", "cookie_secret", False),
    ("http_url", "https://idp.example.com/dex", True),
    ("http_url", "idp.example.com", False),
    ("system_namespace", "kube-system", True),
    ("system_namespace", "default", True),
    ("system_namespace", "kubeflow", False),
    ("positive_int", 2, True),
    ("positive_int", 0, False),
    ("positive_int", True, False),
    ("positive_int", "2", False),
    ("fixed_image_tag", "v7.15.6", True),
    ("fixed_image_tag", "latest", False),
    ("oauth2_proxy_release", "v7.15.2", True),
    ("oauth2_proxy_release", "v7.16.0", True),
    ("oauth2_proxy_release", "v8.0.0", True),
    ("oauth2_proxy_release", "v7.15.1", False),
    ("oauth2_proxy_release", "v7.5.0", False),
    ("oauth2_proxy_release", "latest", False),
    ("ip_or_cidr", "10.244.0.0/16", True),
    ("ip_or_cidr", "fd00::/8", True),
    ("ip_or_cidr", "ingress-nginx", False),
    ("cookie_name", "__Host-oauth2-proxy", True),
    ("cookie_name", "a b", False),
    ("cookie_secret", "UkVOREVSLWNvb2tpZS1GQUtFLTMyLWJ5dGVzLTAxMjM", True),
    ("cookie_secret", "only-21-characters-xx", False),
    ("positive_go_duration", "30s", True),
    ("positive_go_duration", "0s", False),
    ("positive_go_duration", "0h0m", False),
    ("group_value", "zerotrust-users", True),
    ("group_value", "Shop Buyers", True),
    ("group_value", "00000000-1111-2222-3333-444444444444", True),
    ("group_value", "a,b", False),
    ("group_value", " padded", False),
    ("group_value", "", False),
    ("app_role_value", "colors.user", True),
    ("app_role_value", "Task.Read/All", True),
    ("app_role_value", "colors user", False),
    ("app_role_value", ".hidden", False),
    ("app_role_value", "a,b", False),
    ("app_role_value", "r" * 121, False),
    ("claim_name", "roles", True),
    ("claim_name", "realm_access.roles", True),
    ("claim_name", "my claim", False),
    ("email_domain", "*", True),
    ("email_domain", "example.com", True),
    ("email_domain", ".example.com", True),
    ("email_domain", "@example.com", False),
    ("http_path", "/", True),
    ("http_path", "/shop/v1", True),
    ("http_path", "shop", False),
    ("http_path", "/a//b", False),
    ("http_path", "/(.*)", False),
    ("header_name", "X-Auth-Request-User", True),
    ("header_name", "X Auth", False),
    ("port", 8080, True),
    ("port", 65536, False),
    ("port", "80", False),
]


@pytest.mark.parametrize(
    ("value", "seconds"), [("1h30m", 5400.0), ("8h", 28800.0), ("1m30s", 90.0), ("500ms", 0.5), ("1 h", None)]
)
def test_go_durations_are_read_in_seconds(value: str, seconds: float | None) -> None:
    assert v.go_duration_seconds(value) == seconds


@pytest.mark.parametrize(("rule", "value", "valid"), CASES)
def test_each_rule(rule: str, value: object, valid: bool) -> None:
    assert v.FORMATS[rule](value) is valid
    assert FormatTests().tests()[rule](value) is valid


@pytest.mark.parametrize("value", [None, 3, ["a"], {"a": 1}])
def test_non_strings_never_match_a_string_rule(value: object) -> None:
    for rule in ("k8s_name", "dns_name", "guid", "http_url", "cookie_secret"):
        assert v.FORMATS[rule](value) is False


def test_every_rule_is_exposed_as_a_test_plugin() -> None:
    assert set(FormatTests().tests()) == set(v.FORMATS)


def test_format_errors_names_the_variable_and_what_is_allowed() -> None:
    checks = [
        {"var": "oauth2_proxy_proxy_buffer_size", "value": "big", "format": "nginx_size", "allowed": "an nginx size"},
        {"var": "oauth2_proxy_replicas", "value": 2, "format": "positive_int"},
        {"var": "oauth2_proxy_image_digest", "value": "", "format": "image_digest", "empty_ok": True},
    ]
    assert format_errors(checks) == ['oauth2_proxy_proxy_buffer_size must be an nginx size; got "big".']
    assert FilterModule().filters()["format_errors"] is format_errors


def test_format_errors_refuses_an_unknown_rule() -> None:
    with pytest.raises(AnsibleFilterError, match="known format"):
        format_errors([{"var": "x", "value": 1, "format": "prime"}])


def test_model_conflicts_names_the_component_input_and_the_stack_input() -> None:
    checks = [
        {"var": "oauth2_proxy_namespace", "value": "auth", "model": "oauth2-proxy", "stack_var": "zerotrust_aks_x"},
        {"var": "colors_web_namespace", "value": "web", "model": "web", "stack_var": "zerotrust_aks_y"},
    ]
    assert model_conflicts(checks) == [
        'oauth2_proxy_namespace is "auth" but the stack model has "oauth2-proxy": set zerotrust_aks_x (or '
        "oauth2_proxy_namespace in the inventory) so that every reference follows."
    ]
